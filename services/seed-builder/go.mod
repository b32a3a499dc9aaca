module ibu.dev/services/seed-builder

go 1.26.0

replace ibu.dev/shared => ../../shared
