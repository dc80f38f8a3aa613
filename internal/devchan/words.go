package devchan

import "github.com/sethvargo/go-diceware/diceware"

// Word returns word n (0 ≤ n < SASSize) of the EFF short word list #2
// (Electronic Frontier Foundation, CC BY 3.0; docs/DEPENDENCIES.md), in
// the list's order: n's four base-6 digits, each plus one, are the dice
// roll that names the word (0 is 1111 "aardvark", 1295 is 6666).
func Word(n int) string {
	if n < 0 || n >= SASSize {
		panic("devchan: word index out of range")
	}
	roll := (n/216+1)*1000 + (n/36%6+1)*100 + (n/6%6+1)*10 + (n%6 + 1)
	return diceware.WordListEffSmall().WordAt(roll)
}
