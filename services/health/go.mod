module ibu.dev/services/health

go 1.26.0

replace ibu.dev/shared => ../../shared
