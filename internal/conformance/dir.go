package conformance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// vectorsEnv, when set, names the vectors folder instead of testdata/.
const vectorsEnv = "MPENC_VECTORS"

// VectorsDir returns the vectors folder: $MPENC_VECTORS when set, else
// testdata/ at the module root (see [ModuleRoot]). A missing folder is an
// error saying where it was looked for.
func VectorsDir() (string, error) {
	if d := os.Getenv(vectorsEnv); d != "" {
		return checkDir(d, "from $MPENC_VECTORS")
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return checkDir(filepath.Join(root, "testdata"), "the module's testdata/")
}

// ModuleRoot returns the nearest folder at or above the working directory
// that holds a go.mod.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("conformance: %v", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("conformance: no go.mod at or above %s", wd)
		}
	}
}

func checkDir(d, what string) (string, error) {
	st, err := os.Stat(d)
	if err == nil && !st.IsDir() {
		err = errors.New("not a folder")
	}
	if err != nil {
		return "", fmt.Errorf("conformance: the vectors are missing at %s (%s; set MPENC_VECTORS to another folder, or restore testdata/ from the repository): %v", d, what, err)
	}
	return d, nil
}
