// Test service (Java runtime) for the trace-header propagation observer.
//
// Inbound:    com.sun.net.httpserver.HttpServer (HTTP/1.1, keep-alive) with
//             Executors.newFixedThreadPool(4) as its executor.
// Downstream: java.net.http.HttpClient forced to HTTP/1.1; the handler thread
//             blocks in send() while the client's own SelectorManager thread
//             does the socket I/O.  The client pools connections; with
//             --keepalive they are reused, without it every call carries
//             "Connection: close" so a new connection is used per call.
//
// Launch (single-file source, no build step):
//   java tests/apps/Svc.java --port P [--downstream http://127.0.0.1:PORT] [--keepalive]
// Prints exactly one line "LISTENING <port>" on stdout, then serves until
// SIGTERM/SIGINT (exit 0).  See README.md for the routes.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

public class Svc {
    static final String[] TRACE_HEADERS = {
        "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
        "x-b3-flags", "b3", "traceparent", "tracestate", "x-request-id",
        "x-ot-span-context",
    };
    static final String[] PARTIAL_HEADERS = {
        "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "traceparent",
    };
    static final int MAX_FANOUT = 1000;
    static final SecureRandom RANDOM = new SecureRandom();

    static URI downstream; // base, e.g. http://127.0.0.1:1234
    static boolean keepalive;
    static HttpClient client;

    static class BadRequest extends Exception {
        BadRequest(String m) { super(m); }
    }

    static class DownstreamError extends Exception {
        DownstreamError(String m) { super(m); }
    }

    public static void main(String[] argv) throws Exception {
        // Must be set before java.net.http classes initialise: lets a request
        // carry "Connection: close" (a restricted header by default).
        System.setProperty("jdk.httpclient.allowRestrictedHeaders", "connection");

        int port = 0;
        String ds = null;
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("--port") && i + 1 < argv.length) port = Integer.parseInt(argv[++i]);
            else if (a.startsWith("--port=")) port = Integer.parseInt(a.substring(7));
            else if (a.equals("--downstream") && i + 1 < argv.length) ds = argv[++i];
            else if (a.startsWith("--downstream=")) ds = a.substring(13);
            else if (a.equals("--keepalive")) keepalive = true;
            else {
                System.err.println("Svc.java: unknown argument " + a);
                System.exit(2);
            }
        }
        if (ds != null) {
            URI u = URI.create(ds);
            downstream = URI.create("http://" + u.getHost() + ":" + (u.getPort() < 0 ? 80 : u.getPort()));
        }
        client = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5))
            .followRedirects(HttpClient.Redirect.NEVER)
            .build();

        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), s -> Runtime.getRuntime().halt(0));
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), s -> Runtime.getRuntime().halt(0));

        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 128);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        server.setExecutor(pool);
        server.createContext("/", Svc::handle);
        server.start();
        System.out.println("LISTENING " + server.getAddress().getPort());
        System.out.flush();
    }

    static Map<String, String> parseQuery(String raw) {
        Map<String, String> q = new HashMap<>();
        if (raw == null || raw.isEmpty()) return q;
        for (String part : raw.split("&")) {
            if (part.isEmpty()) continue;
            int eq = part.indexOf('=');
            String k = eq < 0 ? part : part.substring(0, eq);
            String v = eq < 0 ? "" : part.substring(eq + 1);
            k = URLDecoder.decode(k, StandardCharsets.UTF_8);
            v = URLDecoder.decode(v, StandardCharsets.UTF_8);
            q.putIfAbsent(k, v);
        }
        return q;
    }

    static void handle(HttpExchange ex) {
        int status;
        String body;
        try {
            try (InputStream in = ex.getRequestBody()) {
                in.transferTo(OutputStream.nullOutputStream());
            }
            String path = ex.getRequestURI().getRawPath();
            Map<String, String> q = parseQuery(ex.getRequestURI().getRawQuery());
            String method = ex.getRequestMethod();
            if (!method.equals("GET") && !method.equals("HEAD")) {
                status = 404;
                body = "not found\n";
            } else {
                try {
                    String[] r = route(ex, path, q);
                    if (r == null) {
                        status = 404;
                        body = "not found\n";
                    } else {
                        status = 200;
                        body = r[0];
                    }
                } catch (BadRequest e) {
                    status = 400;
                    body = "bad request: " + e.getMessage() + "\n";
                } catch (DownstreamError e) {
                    status = 502;
                    body = "downstream error: " + e.getMessage() + "\n";
                }
            }
            byte[] data = body.getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", "text/plain");
            ex.sendResponseHeaders(status, data.length); // sets Content-Length
            try (OutputStream out = ex.getResponseBody()) {
                out.write(data);
            }
        } catch (IOException | RuntimeException e) {
            // client went away or similar; nothing useful to do
        } finally {
            ex.close();
        }
    }

    static String[] route(HttpExchange ex, String path, Map<String, String> q)
            throws BadRequest, DownstreamError {
        switch (path) {
            case "/leaf": {
                String d = q.get("delay_ms");
                if (d != null) {
                    try {
                        Thread.sleep(Long.parseLong(d));
                    } catch (NumberFormatException e) {
                        throw new BadRequest("delay_ms");
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                return new String[] {"ok"};
            }
            case "/forward":
                return new String[] {call(q, copy(ex, TRACE_HEADERS))};
            case "/drop":
                return new String[] {call(q, new ArrayList<>())};
            case "/partial":
                return new String[] {call(q, copy(ex, PARTIAL_HEADERS))};
            case "/newtrace":
                return new String[] {call(q, newTrace())};
            case "/fanout": {
                int n;
                try {
                    n = Integer.parseInt(q.getOrDefault("n", "1"));
                } catch (NumberFormatException e) {
                    throw new BadRequest("n");
                }
                n = Math.max(0, Math.min(n, MAX_FANOUT));
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < n; i++) {
                    if (i > 0) sb.append(' ');
                    sb.append(call(q, copy(ex, TRACE_HEADERS)));
                }
                return new String[] {sb.toString()};
            }
            case "/mixed":
                if ("1".equals(q.get("drop"))) return new String[] {call(q, new ArrayList<>())};
                return new String[] {call(q, copy(ex, TRACE_HEADERS))};
            default:
                return null;
        }
    }

    static List<String[]> copy(HttpExchange ex, String[] names) {
        List<String[]> out = new ArrayList<>();
        for (String name : names) {
            List<String> values = ex.getRequestHeaders().get(name); // case-insensitive
            if (values == null) continue;
            for (String v : values) out.add(new String[] {name, v});
        }
        return out;
    }

    static String hex(int bytes) {
        byte[] b = new byte[bytes];
        RANDOM.nextBytes(b);
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    static List<String[]> newTrace() {
        String traceId = hex(16);
        List<String[]> out = new ArrayList<>();
        out.add(new String[] {"x-b3-traceid", traceId});
        out.add(new String[] {"x-b3-spanid", hex(8)});
        out.add(new String[] {"x-b3-sampled", "1"});
        out.add(new String[] {"traceparent", "00-" + traceId + "-" + hex(8) + "-01"});
        return out;
    }

    static String call(Map<String, String> q, List<String[]> headers) throws DownstreamError {
        if (downstream == null) throw new DownstreamError("no --downstream configured");
        String path = "/leaf";
        String d = q.get("delay_ms");
        if (d != null) path += "?delay_ms=" + URLEncoder.encode(d, StandardCharsets.UTF_8);
        HttpRequest.Builder b = HttpRequest.newBuilder(downstream.resolve(path))
            .GET()
            .timeout(Duration.ofSeconds(30));
        for (String[] h : headers) b.header(h[0], h[1]);
        if (!keepalive) b.header("Connection", "close");
        try {
            HttpResponse<Void> resp = client.send(b.build(), HttpResponse.BodyHandlers.discarding());
            return Integer.toString(resp.statusCode());
        } catch (IOException | IllegalArgumentException e) {
            throw new DownstreamError(e.toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new DownstreamError("interrupted");
        }
    }
}
