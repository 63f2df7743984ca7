# The cgview image, built from source inside a rust image: for hosts that can pull from a registry.
#   docker build -t cgview .
# Offline (no registry), packaging/build-image.sh puts a static binary built on the host on the same
# empty base (packaging/Dockerfile). Both give one static binary on `scratch`; nothing is copied to the
# host. The DaemonSet (daemonset/) and the Docker-host agent (README, "On a Docker host, as a container")
# run it privileged with the host's pids, /dev/fuse and the host paths it needs.
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
