package lamina.runtime;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The Runtime API over one keep-alive HTTP/1.1 connection, blocking: what the client needs of HTTP and no
 * more (a GET, a POST with a body, answers with Content-Length or chunked). java.net.http's client cost a
 * selector thread, futures and ~1.5 ms per warm invocation, and its module's loading ~160 ms of a cold
 * start without a standby (bench/runtimes_bench.py --only java); AWS's own Java client uses a native one.
 * A connection the server closed is opened again once per request.
 */
final class RuntimeApi {
    /** An answer: status, headers (names as sent; look up with {@link #header}), body. */
    static final class Reply {
        final int status;
        final Map<String, List<String>> headers;
        final byte[] body;

        Reply(int status, Map<String, List<String>> headers, byte[] body) {
            this.status = status;
            this.headers = headers;
            this.body = body;
        }

        String header(String name) {
            for (Map.Entry<String, List<String>> e : headers.entrySet()) {
                if (e.getKey().equalsIgnoreCase(name) && !e.getValue().isEmpty()) return e.getValue().get(0);
            }
            return null;
        }
    }

    private final String host;
    private final int port;
    private Socket socket;
    private InputStream in;
    private OutputStream out;

    RuntimeApi(String address) {
        int colon = address.lastIndexOf(':');
        this.host = colon < 0 ? address : address.substring(0, colon);
        this.port = colon < 0 ? 80 : Integer.parseInt(address.substring(colon + 1));
    }

    Reply get(String path) throws IOException {
        return exchange(("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1), null);
    }

    Reply post(String path, byte[] body, String errorType) throws IOException {
        StringBuilder head = new StringBuilder(160).append("POST ").append(path).append(" HTTP/1.1\r\nHost: ").append(host)
                .append("\r\nContent-Type: application/json\r\nContent-Length: ").append(body.length).append("\r\n");
        if (errorType != null) head.append("Lambda-Runtime-Function-Error-Type: ").append(errorType).append("\r\n");
        return exchange(head.append("\r\n").toString().getBytes(StandardCharsets.ISO_8859_1), body);
    }

    private Reply exchange(byte[] head, byte[] body) throws IOException {
        boolean fresh = socket == null;
        try {
            return once(head, body);
        } catch (IOException e) {
            close();
            if (fresh) throw e;
            return once(head, body);  // the kept-alive connection had been closed: once more, on a new one
        }
    }

    private Reply once(byte[] head, byte[] body) throws IOException {
        if (socket == null) {
            socket = new Socket();
            socket.setTcpNoDelay(true);
            socket.connect(new InetSocketAddress(host, port));
            in = new BufferedInputStream(socket.getInputStream(), 65536);
            out = socket.getOutputStream();
        }
        if (body == null || body.length < 65536) {
            byte[] request = head;
            if (body != null && body.length > 0) {
                request = new byte[head.length + body.length];
                System.arraycopy(head, 0, request, 0, head.length);
                System.arraycopy(body, 0, request, head.length, body.length);
            }
            out.write(request);
        } else {
            out.write(head);
            out.write(body);
        }
        out.flush();
        return read();
    }

    private Reply read() throws IOException {
        String status = line();
        if (!status.startsWith("HTTP/1.") || status.length() < 12) throw new IOException("not an HTTP answer: " + status);
        int code = Integer.parseInt(status.substring(9, 12));
        Map<String, List<String>> headers = new LinkedHashMap<>();
        long length = -1;
        boolean chunked = false;
        boolean close = status.startsWith("HTTP/1.0");
        for (String line = line(); !line.isEmpty(); line = line()) {
            int colon = line.indexOf(':');
            if (colon <= 0) continue;
            String name = line.substring(0, colon).trim();
            String value = line.substring(colon + 1).trim();
            headers.computeIfAbsent(name, k -> new ArrayList<>(1)).add(value);
            if (name.equalsIgnoreCase("Content-Length")) length = Long.parseLong(value);
            else if (name.equalsIgnoreCase("Transfer-Encoding")) chunked = value.equalsIgnoreCase("chunked");
            else if (name.equalsIgnoreCase("Connection")) close = value.equalsIgnoreCase("close");
        }
        byte[] body;
        if (chunked) {
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            for (int size = chunkSize(); size > 0; size = chunkSize()) {
                all.write(exactly(size));
                line();
            }
            while (!line().isEmpty()) { /* trailers */ }
            body = all.toByteArray();
        } else if (length >= 0) {
            body = exactly((int) length);
        } else {
            body = in.readAllBytes();
            close = true;
        }
        if (close) close();
        return new Reply(code, headers, body);
    }

    private int chunkSize() throws IOException {
        String size = line();
        int semi = size.indexOf(';');
        return Integer.parseInt((semi < 0 ? size : size.substring(0, semi)).trim(), 16);
    }

    private byte[] exactly(int n) throws IOException {
        byte[] data = in.readNBytes(n);
        if (data.length != n) throw new EOFException("the connection closed inside an answer");
        return data;
    }

    private String line() throws IOException {
        StringBuilder line = new StringBuilder(64);
        for (int c = in.read(); c != '\n'; c = in.read()) {
            if (c < 0) throw new EOFException("the connection closed");
            if (c != '\r') line.append((char) c);
        }
        return line.toString();
    }

    void close() {
        if (socket != null) {
            try {
                socket.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        socket = null;
        in = null;
        out = null;
    }
}
