module ibu.dev/test

go 1.26.0

replace ibu.dev/shared => ../shared
