// Package conformance checks vector files in the shapes of the project's
// testdata/ (the reference's vectors, see testdata/README.md) through the
// project's real components: the reference's known answers through crypto
// and internal/wire, greeter flows through greeter and internal/greeting
// with each member's recorded randomness injected, data messages through
// internal/message, and session traces through internal/serverorder, the
// observer greeter, internal/message and the transcript.
//
// A file's shape is recognised from its top-level keys, the most specific
// shape first ([Detect]), or forced ([CheckFileAs]). [VectorsDir] finds the
// vectors folder: testdata/ at the module root, or $MPENC_VECTORS.
//
// Each check yields one line on failure; a [Report] counts them. The
// command cmd/mpenc-conformance and the test suite both use it, so the
// conformance tests and the runner are the same code.
package conformance
