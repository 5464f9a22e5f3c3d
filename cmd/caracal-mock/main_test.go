package main

import (
	"strings"
	"testing"
)

func TestRunRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-output-tokens", "-1"}, "negative"},
		{[]string{"-error-every", "-3"}, "negative"},
		{[]string{"-addr", "127.0.0.1:99999"}, "cannot listen"},
		{[]string{"-no-such-flag"}, "not defined"},
	} {
		err := run(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%v) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
