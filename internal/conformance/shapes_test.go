package conformance

import "testing"

// TestShapesOrder: shapes are listed from the most specific (most required
// keys) to the least, which is what makes Detect's first match the most
// specific one; and no shape's keys are a subset of a later one's.
func TestShapesOrder(t *testing.T) {
	for i := 1; i < len(shapes); i++ {
		if len(shapes[i].keys) > len(shapes[i-1].keys) {
			t.Errorf("%s (%d keys) is listed after %s (%d keys)", shapes[i].kind, len(shapes[i].keys), shapes[i-1].kind, len(shapes[i-1].keys))
		}
	}
	for i, a := range shapes {
		for _, b := range shapes[i+1:] {
			top := map[string]bool{}
			for _, k := range b.keys {
				top[k] = true
			}
			sub := true
			for _, k := range a.keys {
				sub = sub && top[k]
			}
			if sub {
				t.Errorf("every key of %s is a key of the less specific %s", a.kind, b.kind)
			}
		}
	}
}
