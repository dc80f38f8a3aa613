package applog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/internal/applog"
)

func TestZerolog(t *testing.T) {
	var buf bytes.Buffer
	log := applog.Zerolog(zerolog.New(&buf).Level(zerolog.InfoLevel))
	log(app.LevelDebug, "hidden", "k", 1)
	log(app.LevelWarn, "hello", "room", "r@conf", "err", errors.New("boom"), "nilerr", error(nil), "none", nil, "dangling")
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("one JSON line expected, got %q: %v", buf.String(), err)
	}
	want := map[string]any{"level": "warn", "message": "hello", "room": "r@conf", "err": "boom"}
	if len(got) != len(want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
