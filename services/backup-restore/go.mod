module ibu.dev/services/backup-restore

go 1.26.0

replace ibu.dev/shared => ../../shared
