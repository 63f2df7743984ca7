# The cgview image: one static binary on an empty base. Nothing is copied to the host; the DaemonSet
# (daemonset/) runs it privileged with hostPID, /dev/fuse and the host paths it needs.
#   docker build -t cgview .
FROM rust:1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends file && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cp "$(packaging/build-static.sh)" /cgview

FROM scratch
COPY --from=build /cgview /cgview
# The repair helper is this same binary, run again by path: it must stay at /cgview.
ENTRYPOINT ["/cgview"]
CMD ["mount", "/var/lib/cgview"]
