package metrics

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// Chart colours.
const (
	colourSucceeded = "#2da44e"
	colourFailed    = "#cf222e"
	colourOther     = "#8c959f"
	colourLeadTime  = "#0969da"
)

// SVG draws an environment's deployments per week (stacked: succeeded, failed, other) with the
// median lead time as a line (right axis), as a standalone SVG a README or a job summary can embed.
func SVG(e Env) string {
	const w, h, left, right, top, bottom = 720, 320, 48, 56, 40, 48
	plotW, plotH := float64(w-left-right), float64(h-top-bottom)
	weeks := e.Weeks
	maxCount, maxLead := 1, time.Duration(0)
	for _, wk := range weeks {
		maxCount = max(maxCount, wk.Succeeded+wk.Failed+wk.Other)
		maxLead = max(maxLead, wk.LeadTimeMedian)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s: deployments per week and median lead time</text>`+"\n", left, html.EscapeString(e.Env))
	// Axes and grid.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#57606a"/>`+"\n", left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#57606a"/>`+"\n", left, top, left, h-bottom)
	for i := 0; i <= 4; i++ {
		y := float64(top) + plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#d0d7de" stroke-dasharray="2,3"/>`+"\n", left, y, w-right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.1f</text>`+"\n", left-6, y+4, float64(maxCount)*float64(4-i)/4)
		if maxLead > 0 {
			label := "0"
			if i < 4 {
				label = human(time.Duration(float64(maxLead) * float64(4-i) / 4))
			}
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="%s">%s</text>`+"\n", w-right+6, y+4, colourLeadTime, label)
		}
	}
	if len(weeks) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">no deployment in this window</text>`+"\n", w/2, h/2)
	}
	slot := plotW / float64(max(len(weeks), 1))
	bar := slot * 0.6
	var line []string
	for i, wk := range weeks {
		x := float64(left) + slot*float64(i) + (slot-bar)/2
		y := float64(h - bottom)
		for _, part := range []struct {
			n      int
			colour string
			what   string
		}{{wk.Succeeded, colourSucceeded, "succeeded"}, {wk.Failed, colourFailed, "failed or rolled back"}, {wk.Other, colourOther, "other"}} {
			if part.n == 0 {
				continue
			}
			hgt := plotH * float64(part.n) / float64(maxCount)
			y -= hgt
			fmt.Fprintf(&b, `<rect class="bar %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d %s</title></rect>`+"\n",
				strings.Fields(part.what)[0], x, y, bar, hgt, part.colour, wk.Start.Format("2006-01-02"), part.n, part.what)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x+bar/2, h-bottom+16, wk.Start.Format("Jan 2"))
		if maxLead > 0 && wk.LeadTimeMedian > 0 {
			ly := float64(h-bottom) - plotH*float64(wk.LeadTimeMedian)/float64(maxLead)
			line = append(line, fmt.Sprintf("%.1f,%.1f", x+bar/2, ly))
		}
	}
	if len(line) > 0 {
		fmt.Fprintf(&b, `<polyline class="lead-time" points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(line, " "), colourLeadTime)
		for _, p := range line {
			xy := strings.Split(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], colourLeadTime)
		}
	}
	// Legend.
	lx := left
	for _, l := range []struct{ colour, text string }{{colourSucceeded, "succeeded"}, {colourFailed, "failed / rolled back"}, {colourOther, "other"}, {colourLeadTime, "median lead time"}} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, h-18, l.colour, lx+14, h-9, l.text)
		lx += 150
	}
	b.WriteString("</svg>\n")
	return b.String()
}
