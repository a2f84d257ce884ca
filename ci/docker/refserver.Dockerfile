# The reference gateway: the static bin/refserver (CGO_ENABLED=0) and nothing else.
# Built by `make images` from a context holding only the binary.
FROM scratch
COPY refserver /refserver
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["/refserver"]
# Not dev mode (dev refuses non-loopback addresses): give --auth-secret or $SQUALL_AUTH_SECRET.
CMD ["--addr", "0.0.0.0:8080"]
