// Package applog adapts a zerolog logger to [app.LogFunc], for the client
// and the bot, which both log with zerolog (the client to a file, the bot
// as JSON on standard error).
package applog

import (
	"github.com/rs/zerolog"

	"github.com/mpenc/mpenc/app"
)

// Zerolog returns an [app.LogFunc] that writes to zl: each key/value pair
// becomes a field (a nil error is left out), the level maps to zerolog's.
func Zerolog(zl zerolog.Logger) app.LogFunc {
	return func(level app.Level, msg string, kv ...any) {
		var ev *zerolog.Event
		switch level {
		case app.LevelDebug:
			ev = zl.Debug()
		case app.LevelInfo:
			ev = zl.Info()
		case app.LevelWarn:
			ev = zl.Warn()
		default:
			ev = zl.Error()
		}
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			switch v := kv[i+1].(type) {
			case error:
				if v != nil {
					ev = ev.AnErr(k, v)
				}
			case nil:
			default:
				ev = ev.Interface(k, v)
			}
		}
		ev.Msg(msg)
	}
}
