package proc

import (
	"os"
	"testing"
)

func TestAlive(t *testing.T) {
	self := Self()
	tests := []struct {
		id   string
		want bool
	}{
		{self, true},
		{"", false},
		{"garbage", false},
		{"1:0", false}, // pid 1 exists, but did not start at tick 0
		{"999999999:5", false},
	}
	for _, tc := range tests {
		if got := Alive(tc.id); got != tc.want {
			t.Errorf("Alive(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
	if got, _ := ID(os.Getpid()); got != self {
		t.Errorf("ID(self) = %q, Self() = %q", got, self)
	}
}
