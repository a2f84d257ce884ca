# Redis for cluster mode: Debian's redis-server binary with exactly the shared libraries ldd lists
# for it (and the dynamic loader), copied by `make images` into the context at their own paths.
FROM scratch
COPY rootfs/ /
USER 65534:65534
EXPOSE 6379
ENTRYPOINT ["/usr/bin/redis-server"]
# No persistence (a scratch image has nowhere to keep it), reachable on the container's network.
CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", "/"]
