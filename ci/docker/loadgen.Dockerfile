# The load generator: the static bin/loadgen (CGO_ENABLED=0) and nothing else. As an agent:
#   docker run IMAGE agent --listen 0.0.0.0:7070 --tls-cert ... --tls-key ...   (token in $LOADGEN_AGENT_TOKEN)
# Built by `make images` from a context holding only the binary.
FROM scratch
COPY loadgen /loadgen
USER 65534:65534
EXPOSE 7070
ENTRYPOINT ["/loadgen"]
CMD ["--help"]
