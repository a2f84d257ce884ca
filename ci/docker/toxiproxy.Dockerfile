# Toxiproxy's server, built by `make images` from its Go module (github.com/Shopify/toxiproxy/v2,
# cmd/server, at the version go.mod pins) with CGO_ENABLED=0: no registry image is needed.
FROM scratch
COPY toxiproxy-server /toxiproxy-server
USER 65534:65534
EXPOSE 8474
ENTRYPOINT ["/toxiproxy-server"]
CMD ["-host", "0.0.0.0", "-port", "8474"]
