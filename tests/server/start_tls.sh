# Sourced by the bindings' test scripts: an HTTPS server (Python's http.server and ssl modules)
# with certificates made for the run by openssl, so TLS is tested without the internet and
# without trusting anything through the environment.
#
# start_tls_server DIR SERVE_DIR
#   Writes DIR/tls/: ca.pem (a root), server.pem + server.key (for localhost, from the root),
#   client.pem + client.key (client authentication, from the root). Starts the server on
#   127.0.0.1, serving the files of SERVE_DIR. Sets TLS_SERVER_PID, TLS_SERVER_URL
#   (https://localhost:PORT) and TLS_DIR. The server exits when the calling shell does (it
#   watches its parent); kill TLS_SERVER_PID to stop it sooner. Exits 1 with a message if
#   openssl or python3 is missing or the server does not start.
start_tls_server() {
    local dir=$1 serve=$2
    command -v openssl >/dev/null || { echo "FAIL: openssl is missing (apt-get install -y openssl)" >&2; exit 1; }
    command -v python3 >/dev/null || { echo "FAIL: python3 is missing" >&2; exit 1; }
    TLS_DIR="$dir/tls"
    mkdir -p "$TLS_DIR"
    (
        cd "$TLS_DIR"
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=openbits test root" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
        printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.ext
        for name in server client; do
            openssl req "${ec[@]}" -keyout "$name.key" -out "$name.csr" -subj "/CN=openbits $name" 2>/dev/null
            openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -out "$name.pem" -extfile "$name.ext" 2>/dev/null
        done
    ) || { echo "FAIL: openssl could not make the test certificates" >&2; exit 1; }
    python3 - "$TLS_DIR" "$serve" >"$TLS_DIR/port" 2>"$TLS_DIR/server.err" <<'EOF' &
import functools, http.server, os, ssl, sys, threading, time
tls, serve = sys.argv[1], sys.argv[2]
parent = os.getppid()
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, address):
        pass  # refused handshakes are part of the tests
httpd = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=serve))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(tls, "server.pem"), os.path.join(tls, "server.key"))
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_address[1], flush=True)
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
httpd.serve_forever()
EOF
    TLS_SERVER_PID=$!
    local port=""
    for _ in $(seq 200); do
        port=$(head -n 1 "$TLS_DIR/port" 2>/dev/null || true)
        [[ -n "$port" ]] && break
        kill -0 "$TLS_SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z "$port" ]]; then
        echo "FAIL: the TLS test server did not start" >&2
        cat "$TLS_DIR/server.err" >&2 || true
        exit 1
    fi
    TLS_SERVER_URL="https://localhost:$port"
}
