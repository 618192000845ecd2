# syntax=docker/dockerfile:1
# A static backfill binary on distroless (CA certificates included, runs as nonroot).
#   docker build -t backfill --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm -e AMPLITUDE_API_KEY backfill run --checkpoint s3://bucket/state/job1 s3://bucket/events/
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X main.Version=${VERSION} -X main.Commit=${COMMIT}" \
    -o /out/backfill ./cmd/backfill

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/backfill /usr/local/bin/backfill
# Local checkpoints and spill files go here unless --checkpoint points at a bucket.
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/backfill"]
CMD ["help"]
