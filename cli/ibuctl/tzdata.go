package ibuctl

// The time zone database is embedded so that --window checks an IANA time
// zone name the same way on any machine, with or without /usr/share/zoneinfo.
import _ "time/tzdata"
