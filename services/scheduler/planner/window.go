package planner

import (
	"fmt"
	"time"
	_ "time/tzdata" // time zones resolve the same on hosts and images without a zoneinfo database

	"ibu.dev/shared/events"
)

// window is a parsed MaintenanceWindow.
type window struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes after local midnight
	loc        *time.Location
}

type windowError struct{ code, msg string }

func (e *windowError) Error() string { return e.code + ": " + e.msg }

func weekday(d events.Weekday) (time.Weekday, bool) {
	for i, name := range [7]events.Weekday{events.Sunday, events.Monday, events.Tuesday, events.Wednesday,
		events.Thursday, events.Friday, events.Saturday} {
		if d == name {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// parseWindow checks a window; the error is a *windowError naming the
// first problem (Validate reports one per window).
func parseWindow(w events.MaintenanceWindow) (window, error) {
	var out window
	if len(w.Days) == 0 {
		return out, &windowError{CodeWindowNoDays, "days is empty: the window would never open"}
	}
	for _, d := range w.Days {
		wd, ok := weekday(d)
		if !ok {
			return out, &windowError{CodeWindowBadDay, fmt.Sprintf("day %q is not one of Mon, Tue, Wed, Thu, Fri, Sat, Sun", d)}
		}
		out.days[wd] = true
	}
	var err error
	if out.start, err = parseHHMM(w.Start); err != nil {
		return out, &windowError{CodeWindowBadTime, "start: " + err.Error()}
	}
	if out.end, err = parseHHMM(w.End); err != nil {
		return out, &windowError{CodeWindowBadTime, "end: " + err.Error()}
	}
	if w.TimeZone == "" {
		return out, &windowError{CodeWindowUnknownTimeZone, "timeZone is empty: give an IANA name such as UTC or Europe/Paris"}
	}
	if out.loc, err = time.LoadLocation(w.TimeZone); err != nil {
		return out, &windowError{CodeWindowUnknownTimeZone, fmt.Sprintf("timeZone %q is not a known IANA time zone", w.TimeZone)}
	}
	if out.start == out.end {
		return out, &windowError{CodeWindowNeverOpens, fmt.Sprintf("start and end are both %s: the window never opens (for the whole day, give no window)", w.Start)}
	}
	return out, nil
}

func parseHHMM(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' || !digit(s[0]) || !digit(s[1]) || !digit(s[3]) || !digit(s[4]) {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day (00:00-23:59)", s)
	}
	return h*60 + m, nil
}

func digit(b byte) bool { return b >= '0' && b <= '9' }

// openAt reports whether the window is open at t. A window belongs to the
// day it starts on: Sat 22:00-04:00 is open from Saturday 22:00 to Sunday
// 04:00, in the window's time zone. Start is included, end is not.
func (w window) openAt(t time.Time) bool {
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	today, yesterday := lt.Weekday(), (lt.Weekday()+6)%7
	if w.end > w.start {
		return w.days[today] && m >= w.start && m < w.end
	}
	return (w.days[today] && m >= w.start) || (w.days[yesterday] && m < w.end)
}

// nextOpen is the first time after t at which the window opens.
func (w window) nextOpen(t time.Time) time.Time {
	lt := t.In(w.loc)
	y, mo, d := lt.Date()
	for i := 0; i <= 8; i++ {
		day := time.Date(y, mo, d+i, 0, 0, 0, 0, w.loc)
		if !w.days[day.Weekday()] {
			continue
		}
		open := time.Date(y, mo, d+i, w.start/60, w.start%60, 0, 0, w.loc)
		if open.After(t) {
			return open
		}
	}
	return time.Time{}
}

// NextWindowOpen reports whether any of the windows is open at now and, if
// none is, when the first one opens next (in that window's time zone). No
// windows means any time: open. Invalid windows are ignored; if none is
// valid, it is closed for good and next is zero.
func NextWindowOpen(windows []events.MaintenanceWindow, now time.Time) (open bool, next time.Time) {
	if len(windows) == 0 {
		return true, now
	}
	for _, mw := range windows {
		w, err := parseWindow(mw)
		if err != nil {
			continue
		}
		if w.openAt(now) {
			return true, now
		}
		if n := w.nextOpen(now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return false, next
}
