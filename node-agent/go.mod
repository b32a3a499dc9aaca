module ibu.dev/node-agent

go 1.26.0

replace ibu.dev/shared => ../shared
