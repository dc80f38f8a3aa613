module github.com/mpenc/mpenc

go 1.26.0
