package main

import (
	"strings"

	qrcode "github.com/yeqown/go-qrcode/v2"
)

// qrText renders text as a QR code with Unicode half blocks: two modules
// per character cell, dark modules drawn as spaces on a light background
// (every terminal theme then shows a scannable dark-on-light code), with
// the 4-module quiet zone the standard asks for.
func qrText(text string) (string, error) {
	q, err := qrcode.NewWith(text, qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionLow))
	if err != nil {
		return "", err
	}
	var m matrixWriter
	if err := q.Save(&m); err != nil {
		return "", err
	}
	return m.render(), nil
}

// matrixWriter receives the code's modules from the library.
type matrixWriter struct {
	w, h int
	dark [][]bool // [y][x]
}

func (m *matrixWriter) Write(mat qrcode.Matrix) error {
	m.w, m.h = mat.Width(), mat.Height()
	m.dark = make([][]bool, m.h)
	for y := range m.dark {
		m.dark[y] = make([]bool, m.w)
	}
	mat.Iterate(qrcode.IterDirection_ROW, func(x, y int, v qrcode.QRValue) {
		if x < m.w && y < m.h {
			m.dark[y][x] = v.IsSet()
		}
	})
	return nil
}

func (m *matrixWriter) Close() error { return nil }

const quiet = 4

// at reports whether module (x, y) is dark; outside the code is light.
func (m *matrixWriter) at(x, y int) bool {
	x, y = x-quiet, y-quiet
	return x >= 0 && y >= 0 && x < m.w && y < m.h && m.dark[y][x]
}

// render draws two module rows per text line. A light module is a filled
// half (█ ▀ ▄), a dark one is blank.
func (m *matrixWriter) render() string {
	var b strings.Builder
	for y := 0; y < m.h+2*quiet; y += 2 {
		for x := 0; x < m.w+2*quiet; x++ {
			top, bottom := !m.at(x, y), !m.at(x, y+1)
			if y+1 >= m.h+2*quiet {
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
		if y+2 < m.h+2*quiet {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
