module github.com/backfillhq/backfill/sdkcheck

go 1.26.0

require (
	github.com/amplitude/analytics-go v1.3.1
	github.com/backfillhq/backfill v0.0.0-00010101000000-000000000000
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/valyala/fastjson v1.6.10 // indirect
)

replace github.com/backfillhq/backfill => ../
