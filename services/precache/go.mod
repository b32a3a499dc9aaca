module ibu.dev/services/precache

go 1.26.0

replace ibu.dev/shared => ../../shared
