package benchmarks_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/benchmarks"
	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/internal/testenv"
	"github.com/mlab/mlab/sandbox/docker"
	"github.com/mlab/mlab/tasks"
)

// TestTorchTaskOnDocker runs the starter code of the GPU-capable tasks, and
// scores it, on the docker backend with the full runtime image (torch and
// xgboost), as a session of such a task would.
func TestTorchTaskOnDocker(t *testing.T) {
	cli := testenv.Docker(t)
	img := docker.ImageTag(docker.ImageSpec{Variant: docker.VariantFull})
	if _, err := cli.ImageInspect(t.Context(), img); err != nil {
		testenv.Absent(t, "the torch runtime image %s is not built (make image VARIANT=full): %v", img, err)
	}
	p, err := docker.New(t.Context(), docker.Options{Client: cli, Image: img, Root: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	catalog := tasks.NewCatalog(benchmarks.FS(), "", t.TempDir())
	// The two PyTorch tasks.
	for _, name := range []string{"image-classification", "language-modelling"} {
		t.Run(name, func(t *testing.T) {
			task, err := catalog.Load(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			var want levels
			raw, err := os.ReadFile(filepath.Join(task.Name, "levels.json"))
			if err == nil {
				err = json.Unmarshal(raw, &want)
			}
			if err != nil {
				t.Fatalf("levels.json: %v", err)
			}
			ws := runLevel(t, p, task, "")
			out, err := (&eval.Scorer{Provider: p, Python: "/usr/bin/python3"}).Score(t.Context(), task, eval.Request{Submission: ws})
			if err != nil {
				t.Fatalf("score the starter in docker: %v", err)
			}
			t.Logf("%s starter in docker (%s): %s %.5g", name, img, task.Config.Metric, out.Score)
			if len(want.Baseline) != 2 || out.Score < want.Baseline[0] || out.Score > want.Baseline[1] {
				t.Errorf("the starter scores %.6g in docker, outside its band %v", out.Score, want.Baseline)
			}
		})
	}
}
