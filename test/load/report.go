package load

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Goal says how a row is judged.
type Goal int

// The goals a row is judged by: Bollard against mosquitto, or Bollard
// against a fixed limit.
const (
	NoGoal        Goal = iota
	RatioAtLeast1      // Bollard/mosquitto >= 1 (throughput)
	RatioAtMost1       // Bollard/mosquitto <= 1 (latency)
	BelowLimit         // Bollard's figure < Row.Limit (restart time, memory)
	RatioAtLeast       // Bollard/mosquitto >= Row.Limit (a throughput Bollard pays fsyncs for)
)

// Row is one line of the report: one metric measured on both brokers.
type Row struct {
	Scenario  string
	Metric    string
	Unit      string // msg/s, ms, s, MB
	Bollard   float64
	Mosquitto float64
	// Baseline is another build of Bollard measured in the same run
	// (LOAD_BASELINE_BIN), for before/after ratios; 0: none.
	Baseline float64
	Goal     Goal
	Limit    float64 // for BelowLimit, in Unit
	Errors   []string
	Note     string
}

// Ratio is Bollard's figure over mosquitto's (NaN when either is absent).
func (r Row) Ratio() float64 { return ratio(r.Bollard, r.Mosquitto) }

func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// Met reports whether the goal is met: "yes", "NO", or "" (no goal or no
// figure).
func (r Row) Met() string {
	ok, known := r.met()
	switch {
	case !known:
		return ""
	case ok:
		return "yes"
	default:
		return "NO"
	}
}

func (r Row) met() (ok, known bool) {
	ratio := r.Ratio()
	switch r.Goal {
	case RatioAtLeast1:
		return ratio >= 1, !math.IsNaN(ratio)
	case RatioAtMost1:
		return ratio <= 1, !math.IsNaN(ratio)
	case BelowLimit:
		return r.Bollard < r.Limit, r.Bollard > 0
	case RatioAtLeast:
		return ratio >= r.Limit, !math.IsNaN(ratio)
	}
	return false, false
}

func (r Row) goalText() string {
	switch r.Goal {
	case RatioAtLeast1:
		return "ratio >= 1"
	case RatioAtMost1:
		return "ratio <= 1"
	case BelowLimit:
		return fmt.Sprintf("< %g %s", r.Limit, r.Unit)
	case RatioAtLeast:
		return fmt.Sprintf("ratio >= %g", r.Limit)
	}
	return ""
}

// Report collects rows in order.
type Report struct {
	Rows []Row
}

// Add appends a row.
func (rep *Report) Add(r Row) { rep.Rows = append(rep.Rows, r) }

// Markdown renders the report as a Markdown table, then the errors. With
// a baseline in any row, two more columns give it and Bollard's ratio to it.
func (rep *Report) Markdown() string {
	var b strings.Builder
	base := slices.ContainsFunc(rep.Rows, func(r Row) bool { return r.Baseline > 0 })
	if base {
		b.WriteString("| scenario | metric | bollard | mosquitto | ratio B/M | goal | met | baseline | ratio B/base |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: |\n")
	} else {
		b.WriteString("| scenario | metric | bollard | mosquitto | ratio B/M | goal | met |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | --- | --- |\n")
	}
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |", r.Scenario, r.Metric+unit(r.Unit),
			cell(r.Bollard), cell(r.Mosquitto), ratioCell(r.Ratio()), r.goalText(), r.Met())
		if base {
			fmt.Fprintf(&b, " %s | %s |", cell(r.Baseline), ratioCell(ratio(r.Bollard, r.Baseline)))
		}
		b.WriteString("\n")
	}
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(&b, "\n- %s, %s: %s", r.Scenario, r.Metric, r.Note)
		}
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "\n- ERROR %s, %s: %s", r.Scenario, r.Metric, e)
		}
	}
	return b.String()
}

func unit(u string) string {
	if u == "" {
		return ""
	}
	return " (" + u + ")"
}

func cell(v float64) string {
	if v <= 0 || math.IsNaN(v) {
		return "n/a"
	}
	return num(v)
}

func ratioCell(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

// num prints a figure with a precision that suits its size.
func num(v float64) string {
	switch {
	case v >= 1000:
		return withThousands(int64(math.Round(v)))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func withThousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
