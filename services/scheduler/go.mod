module ibu.dev/services/scheduler

go 1.26.0

replace ibu.dev/shared => ../../shared
