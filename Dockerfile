# One image holding both binaries: `bollard` (the broker) and
# `bollard-operator`. Static binaries on a distroless base, non-root.
# Without Docker, `make image` builds the same image (hack/image: same
# user, paths, entrypoint and working directory; a test keeps them equal).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG IMG=ghcr.io/bollard-io/bollard:${VERSION}
RUN make build VERSION=${VERSION} IMG=${IMG}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/bollard /usr/local/bin/bollard
COPY --from=build /src/bin/bollard-operator /usr/local/bin/bollard-operator
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/bollard"]
