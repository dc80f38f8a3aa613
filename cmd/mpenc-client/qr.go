package main

import (
	"strings"

	"rsc.io/qr"
)

// qrText renders text as a QR code with Unicode half blocks: two modules
// per character cell, dark modules drawn as spaces on a light background
// (every terminal theme then shows a scannable dark-on-light code), with
// the 4-module quiet zone the standard asks for. Error correction is the
// lowest level (L): the smallest code, for a screen, not a worn label.
func qrText(text string) (string, error) {
	c, err := qr.Encode(text, qr.L)
	if err != nil {
		return "", err
	}
	return render(c), nil
}

const quiet = 4

// at reports whether module (x, y) of the code with its quiet zone is
// dark; outside the code is light.
func at(c *qr.Code, x, y int) bool {
	return c.Black(x-quiet, y-quiet) // false outside the code
}

// render draws two module rows per text line. A light module is a filled
// half (█ ▀ ▄), a dark one is blank.
func render(c *qr.Code) string {
	n := c.Size + 2*quiet
	var b strings.Builder
	for y := 0; y < n; y += 2 {
		for x := 0; x < n; x++ {
			top, bottom := !at(c, x, y), !at(c, x, y+1)
			if y+1 >= n {
				bottom = false // past the last row: nothing drawn
			}
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteRune(' ')
			}
		}
		if y+2 < n {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
