package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"rsc.io/qr"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

func TestQRText(t *testing.T) {
	uri := trust.URI("alice@example.org/phone", crypto.PublicKey{1, 2, 3})
	s, err := qrText(uri)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(s, "\n")
	width := utf8.RuneCountInString(rows[0])
	for i, r := range rows {
		if n := utf8.RuneCountInString(r); n != width {
			t.Fatalf("row %d is %d wide, not %d", i, n, width)
		}
		if strings.Trim(r, " █▀▄") != "" {
			t.Fatalf("row %d has other characters: %q", i, r)
		}
	}
	// The quiet zone: 4 light modules around, so the first two rows and
	// the borders are light (full blocks).
	if strings.Trim(rows[0], "█") != "" || strings.Trim(rows[1], "█") != "" {
		t.Errorf("no quiet zone on top:\n%s", s)
	}
	for i, r := range rows[:len(rows)-1] {
		rr := []rune(r)
		if string(rr[:4]) != "████" || string(rr[len(rr)-4:]) != "████" {
			t.Errorf("row %d: no quiet zone on the sides: %q", i, r)
		}
	}
	// QR sizes are 17 + 4·version modules; with the quiet zone, width-8.
	if (width-8-17)%4 != 0 || width-8 < 21 {
		t.Errorf("width %d is not a QR code's", width)
	}
	if len(rows) != (width+1)/2 {
		t.Errorf("%d rows for %d columns", len(rows), width)
	}
	// Finder patterns: row 2 (module rows 4 and 5) holds the top-left
	// finder's dark top edge over its light inside, framed by dark sides.
	if got := string([]rune(rows[2])[4:11]); got != " ▄▄▄▄▄ " {
		t.Errorf("no finder pattern at the top left: %q", got)
	}

	// The drawing, read back module by module, is the encoder's code at
	// error correction level L, inside the quiet zone.
	dark := modules(s)
	code, err := qr.Encode(uri, qr.L)
	if err != nil {
		t.Fatal(err)
	}
	if len(dark) != code.Size+8 && len(dark) != code.Size+9 {
		t.Fatalf("%d module rows for a code of %d", len(dark), code.Size)
	}
	for y := range code.Size + 8 {
		for x := range width {
			if dark[y][x] != code.Black(x-4, y-4) {
				t.Fatalf("module (%d, %d) drawn dark=%v, the code has %v", x-4, y-4, dark[y][x], !dark[y][x])
			}
		}
	}
	// The format information next to the top-left finder (bit i of 15,
	// the layout of ISO/IEC 18004 §7.9, XORed with 101010000010010) names
	// the level: 01 is L.
	var format uint
	for i := range 15 {
		x, y := 8, i // bits 0-5 down column 8, skipping the timing row
		switch {
		case i >= 6 && i < 8:
			y = i + 1
		case i == 8:
			x, y = 7, 8
		case i > 8:
			x, y = 14-i, 8
		}
		if dark[4+y][4+x] {
			format |= 1 << i
		}
	}
	if level := (format ^ 0x5412) >> 13; level != 0b01 {
		t.Errorf("error correction level bits %02b, want 01 (L)", level)
	}
}

// modules reads the half-block drawing back as module rows (true: dark),
// the quiet zone included: █ light over light, ▀ light over dark, ▄ dark
// over light, space dark over dark.
func modules(s string) [][]bool {
	var dark [][]bool
	for _, row := range strings.Split(s, "\n") {
		var top, bottom []bool
		for _, r := range row {
			top = append(top, r != '█' && r != '▀')
			bottom = append(bottom, r != '█' && r != '▄')
		}
		dark = append(dark, top, bottom)
	}
	return dark
}

// TestQRScans draws the rendered text back as pixels (█ light over light,
// ▀ light over dark, ▄ dark over light, space dark over dark), scales it up,
// and decodes it with zbarimg when that is installed: the code on screen
// reads back as the URI.
func TestQRScans(t *testing.T) {
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("requires zbarimg, not installed here (apt-get install zbar-tools; .ci/run installs it)")
	}
	uri := trust.URI("alice@example.org/mpenc-01020304-a1b2c3", crypto.PublicKey{9, 8, 7, 6, 5})
	s, err := qrText(uri)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(s, "\n")
	const scale = 6
	w := utf8.RuneCountInString(rows[0])
	img := image.NewGray(image.Rect(0, 0, w*scale, 2*len(rows)*scale))
	for y, row := range rows {
		for x, r := range []rune(row) {
			top, bottom := r == '█' || r == '▀', r == '█' || r == '▄'
			for dy := range 2 * scale {
				light := top
				if dy >= scale {
					light = bottom
				}
				for dx := range scale {
					if light {
						img.SetGray(x*scale+dx, 2*y*scale+dy, color.Gray{255})
					}
				}
			}
		}
	}
	p := filepath.Join(t.TempDir(), "qr.png")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(zbar, "--raw", "-q", p).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != uri {
		t.Fatalf("scanned %q, want %q", got, uri)
	}
}
