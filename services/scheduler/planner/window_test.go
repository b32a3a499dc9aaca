package planner

import (
	"testing"
	"time"

	"ibu.dev/shared/events"
)

func TestNextWindowOpen(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	weekend := events.MaintenanceWindow{Days: []events.Weekday{events.Saturday, events.Sunday}, Start: "22:00", End: "04:00", TimeZone: "Europe/Paris"}
	office := events.MaintenanceWindow{Days: []events.Weekday{events.Monday, events.Wednesday}, Start: "12:00", End: "13:30", TimeZone: "UTC"}
	at := func(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, loc)
	}
	cases := []struct {
		name    string
		windows []events.MaintenanceWindow
		now     time.Time
		open    bool
		next    time.Time
	}{
		{"no windows: always", nil, t0, true, t0},
		{"before a same-day window", []events.MaintenanceWindow{office}, at(time.UTC, 2026, 3, 2, 11, 59), false, at(time.UTC, 2026, 3, 2, 12, 0)},
		{"start is inside", []events.MaintenanceWindow{office}, at(time.UTC, 2026, 3, 2, 12, 0), true, at(time.UTC, 2026, 3, 2, 12, 0)},
		{"end is outside", []events.MaintenanceWindow{office}, at(time.UTC, 2026, 3, 2, 13, 30), false, at(time.UTC, 2026, 3, 4, 12, 0)},
		{"wrong weekday", []events.MaintenanceWindow{office}, at(time.UTC, 2026, 3, 3, 12, 15), false, at(time.UTC, 2026, 3, 4, 12, 0)},
		{"crossing midnight, before", []events.MaintenanceWindow{weekend}, at(paris, 2026, 3, 7, 21, 0), false, at(paris, 2026, 3, 7, 22, 0)},
		{"crossing midnight, Saturday night", []events.MaintenanceWindow{weekend}, at(paris, 2026, 3, 7, 23, 30), true, at(paris, 2026, 3, 7, 23, 30)},
		{"crossing midnight, Sunday early", []events.MaintenanceWindow{weekend}, at(paris, 2026, 3, 8, 3, 59), true, at(paris, 2026, 3, 8, 3, 59)},
		{"crossing midnight, Sunday morning", []events.MaintenanceWindow{weekend}, at(paris, 2026, 3, 8, 4, 0), false, at(paris, 2026, 3, 8, 22, 0)},
		{"crossing midnight, Monday early belongs to Sunday", []events.MaintenanceWindow{weekend}, at(paris, 2026, 3, 9, 2, 0), true, at(paris, 2026, 3, 9, 2, 0)},
		{"crossing midnight, Saturday early is Friday's", []events.MaintenanceWindow{weekend}, at(paris, 2026, 3, 7, 2, 0), false, at(paris, 2026, 3, 7, 22, 0)},
		{"time zone: 21:30 UTC is 22:30 in Paris", []events.MaintenanceWindow{weekend}, at(time.UTC, 2026, 3, 7, 21, 30), true, at(time.UTC, 2026, 3, 7, 21, 30)},
		{"time zone: weekday in the window's zone", []events.MaintenanceWindow{weekend}, at(time.UTC, 2026, 3, 6, 23, 30), false, at(paris, 2026, 3, 7, 22, 0)},
		{"summer time: the window follows Paris", []events.MaintenanceWindow{weekend}, at(time.UTC, 2026, 7, 4, 20, 30), true, at(time.UTC, 2026, 7, 4, 20, 30)},
		{"earliest of two", []events.MaintenanceWindow{weekend, office}, at(time.UTC, 2026, 3, 3, 9, 0), false, at(time.UTC, 2026, 3, 4, 12, 0)},
		{"invalid windows never open", []events.MaintenanceWindow{{Days: []events.Weekday{events.Monday}, Start: "10:00", End: "10:00", TimeZone: "UTC"}}, t0, false, time.Time{}},
	}
	for _, c := range cases {
		open, next := NextWindowOpen(c.windows, c.now)
		if open != c.open || !next.Equal(c.next) {
			t.Errorf("%s: NextWindowOpen(%s) = %v, %s; want %v, %s", c.name, c.now, open, next, c.open, c.next)
		}
	}
}
