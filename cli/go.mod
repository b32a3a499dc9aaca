module ibu.dev/cli

go 1.26.0

replace ibu.dev/shared => ../shared
