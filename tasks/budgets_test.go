package tasks

import (
	"testing"
	"time"
)

func TestBudgetsMerge(t *testing.T) {
	d := func(x time.Duration) Duration { return Duration(x) }
	task := Budgets{MaxSteps: 7, MaxTime: d(time.Hour), ExecTimeout: d(time.Minute), MaxExecTimeout: d(time.Hour)}
	tests := []struct {
		name           string
		task, override Budgets
		want           Budgets
	}{
		{"task wins when no override", task, Budgets{}, task},
		{"override field by field", task, Budgets{MaxSteps: 3},
			Budgets{MaxSteps: 3, MaxTime: d(time.Hour), ExecTimeout: d(time.Minute), MaxExecTimeout: d(time.Hour)}},
		{"every field overridden", task, Budgets{MaxSteps: 2, MaxTime: d(time.Minute), ExecTimeout: d(5 * time.Second), MaxExecTimeout: d(10 * time.Second)},
			Budgets{MaxSteps: 2, MaxTime: d(time.Minute), ExecTimeout: d(5 * time.Second), MaxExecTimeout: d(10 * time.Second)}},
		{"task's timeout capped by a lower limit", Budgets{ExecTimeout: d(time.Hour), MaxExecTimeout: d(time.Hour)}, Budgets{MaxExecTimeout: d(time.Minute)},
			Budgets{MaxSteps: DefaultMaxSteps, MaxTime: d(DefaultMaxTime), ExecTimeout: d(time.Minute), MaxExecTimeout: d(time.Minute)}},
		{"overriding timeout capped by the task's limit", task, Budgets{ExecTimeout: d(2 * time.Hour)},
			Budgets{MaxSteps: 7, MaxTime: d(time.Hour), ExecTimeout: d(time.Hour), MaxExecTimeout: d(time.Hour)}},
		{"defaults where both are zero", Budgets{}, Budgets{},
			Budgets{MaxSteps: DefaultMaxSteps, MaxTime: d(DefaultMaxTime), ExecTimeout: d(DefaultExecTimeout), MaxExecTimeout: d(DefaultMaxExecTimeout)}},
		{"default timeout capped by an overriding limit", Budgets{}, Budgets{MaxExecTimeout: d(time.Minute)},
			Budgets{MaxSteps: DefaultMaxSteps, MaxTime: d(DefaultMaxTime), ExecTimeout: d(time.Minute), MaxExecTimeout: d(time.Minute)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.task.Merge(tc.override); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
