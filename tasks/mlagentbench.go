package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// AliasFile is MLAgentBench's list of task aliases, at the root of its
// benchmarks/ folder: a JSON object from alias to {"benchmark_folder_name",
// "research_problem"}, each alias a task of its own that runs the named
// folder with its own research problem (the folder's research_problem.txt
// when it states none).
const AliasFile = "tasks.json"

// alias is one entry of tasks.json.
type alias struct {
	Folder  string `json:"benchmark_folder_name"`
	Problem string `json:"research_problem"`
}

// aliases reads the tasks folder's tasks.json; none is no aliases.
func (c *Catalog) aliases() (map[string]*alias, error) {
	if c.dir == "" {
		return nil, nil
	}
	file := filepath.Join(c.dir, AliasFile)
	raw, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read task aliases: %w", err)
	}
	var out map[string]*alias
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("task aliases %s: want a JSON object of alias: {\"benchmark_folder_name\": ..., \"research_problem\": ...}: %w", file, err)
	}
	for name, a := range out {
		switch {
		case !validName.MatchString(name):
			return nil, fmt.Errorf("task aliases %s: alias %q: names use letters, digits, '.', '_' and '-'", file, name)
		case a == nil || a.Folder == "":
			return nil, fmt.Errorf("task aliases %s: alias %q names no benchmark_folder_name", file, name)
		case !validName.MatchString(a.Folder):
			return nil, fmt.Errorf("task aliases %s: alias %q: benchmark_folder_name %q is not a folder name", file, name, a.Folder)
		}
		if _, chained := out[a.Folder]; chained && a.Folder != name {
			return nil, fmt.Errorf("task aliases %s: alias %q names %q, which is an alias itself: name a folder", file, name, a.Folder)
		}
	}
	return out, nil
}

// metricInfo is what a task's scripts say about its score.
type metricInfo struct {
	metric    string
	direction string
	// timedBy is set for a score that is a time measured on this machine.
	timedBy string
}

// mlagentbench holds the metric of each task MLAgentBench publishes, keyed by
// its folder name under MLAgentBench/benchmarks/ in
// github.com/snap-stanford/MLAgentBench, so that its folders load with the
// right direction without a task.yaml. Each entry was read from the files
// named beside it (paths relative to MLAgentBench/benchmarks/<task>/).
var mlagentbench = map[string]metricInfo{
	// scripts/eval.py: get_score returns the test "score" of clrs.evaluate
	// for floyd_warshall, the accuracy of the predicted outputs.
	"CLRS": {metric: "accuracy", direction: Higher},
	// scripts/eval.py returns smapep1 from env/train.py, a SMAPE of y+1 in
	// percent whose docstring says smaller is better.
	"amp-parkinsons-disease-progression-prediction": {metric: "smape", direction: Lower},
	// scripts/eval.py returns the perplexity, exp of the eval loss.
	"babylm": {metric: "perplexity", direction: Lower},
	// scripts/eval.py returns the fraction of CIFAR-10 test images whose
	// argmax in submission.csv is the label.
	"cifar10": {metric: "accuracy", direction: Higher},
	// scripts/eval.py returns score() of env/metric.py: the mean of a
	// rescaled out-of-sample AUC and MAP@20.
	"fathomnet": {metric: "map_auc", direction: Higher},
	// scripts/eval.py returns the mean over the six dimensions of the RMSE
	// from compute_metrics_for_regression in env/train.py.
	"feedback": {metric: "mcrmse", direction: Lower},
	// scripts/eval.py returns the mean absolute error of SalePrice.
	"house-price": {metric: "mae", direction: Lower},
	// scripts/eval.py returns the mean dice score over the test records.
	"identify-contrails": {metric: "dice", direction: Higher},
	// scripts/eval.py returns the fraction of IMDb test reviews whose
	// argmax in submission.csv is the label.
	"imdb": {metric: "accuracy", direction: Higher},
	// No scripts/eval.py is published: env/inference.py prints the average
	// generation time per token, which scripts/research_problem.txt asks to
	// bring down. A folder needs an eval.py to load at all; one that reads
	// that time gets this entry.
	"llama-inference": {metric: "seconds_per_token", direction: Lower, timedBy: TimedByScript},
	// scripts/eval.py returns the "acc" of ogb's Evaluator on the test split.
	"ogbn-arxiv": {metric: "accuracy", direction: Higher},
	// scripts/eval.py returns the fraction of matching Transported values.
	"spaceship-titanic": {metric: "accuracy", direction: Higher},
	// scripts/eval.py returns the first figure of submission.csv (1e10
	// when it cannot), which env/train.py writes: the seconds its forward
	// pass took, timed by train.py itself.
	"vectorization": {metric: "seconds", direction: Lower, timedBy: TimedByScript},
}
