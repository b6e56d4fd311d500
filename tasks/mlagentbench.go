package tasks

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
