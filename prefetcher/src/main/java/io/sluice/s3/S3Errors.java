package io.sluice.s3;

import java.io.EOFException;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.exception.SdkException;

/** What an S3 failure means: worth another try or final, and the IOException a reader gets. */
final class S3Errors {
  private S3Errors() {}

  /** The failure inside the wrappers futures add. */
  static Throwable unwrap(Throwable t) {
    while ((t instanceof CompletionException || t instanceof ExecutionException)
        && t.getCause() != null) {
      t = t.getCause();
    }
    return t;
  }

  /** The HTTP status of a service error, else 0 (connection errors, timeouts, truncation). */
  static int status(Throwable t) {
    Throwable u = unwrap(t);
    return u instanceof AwsServiceException e ? e.statusCode() : 0;
  }

  /** The S3 error code ({@code SlowDown}, {@code NoSuchKey}...), else null. */
  static String code(Throwable t) {
    Throwable u = unwrap(t);
    if (u instanceof AwsServiceException e && e.awsErrorDetails() != null) {
      return e.awsErrorDetails().errorCode();
    }
    return null;
  }

  /**
   * Server errors (5xx), throttling (429, {@code SlowDown}), request timeouts (408), and every
   * failure without a status (reset connections, truncated bodies, our own attempt timeout) are
   * worth another try; the other statuses (403, 404, 412 changed object, 416 bad range) are final.
   */
  static boolean retryable(Throwable t) {
    Throwable u = unwrap(t);
    if (u instanceof CancellationException) {
      return false;
    }
    int status = status(u);
    if (status == 0) {
      return u instanceof SdkException || u instanceof IOException || u instanceof TruncatedBody;
    }
    return status >= 500 || status == 429 || status == 408 || "SlowDown".equals(code(u));
  }

  /**
   * The exception a reader of {@code what} gets for final failure {@code t}, naming the object and
   * what the store said. Missing objects and denied access keep their NIO types so file-system
   * callers ({@code Files.exists}) behave as they do locally.
   */
  static IOException toIOException(String what, Throwable t) {
    Throwable u = unwrap(t);
    if (u instanceof IOException io && io.getMessage() != null && io.getMessage().contains(what)) {
      return io;
    }
    int status = status(u);
    String code = code(u);
    String said =
        status == 0 ? String.valueOf(u) : "HTTP " + status + (code == null ? "" : " " + code);
    IOException e =
        switch (status) {
          case 404 -> new NoSuchFileException(what, null, said);
          case 403 -> new AccessDeniedException(what, null, said);
          case 412 ->
              new IOException(
                  what
                      + ": changed since indexing (ETag no longer matches); re-run sluice dataset index");
          case 416 -> new EOFException(what + ": range past the end of the object (" + said + ")");
          default -> new IOException(what + ": " + said);
        };
    if (e.getCause() == null) {
      e.initCause(u);
    }
    return e;
  }

  /** The object or bucket is not there (404). */
  static boolean notFound(Throwable t) {
    return status(t) == 404;
  }

  /** A body that ended before the bytes the range asked for arrived. */
  static final class TruncatedBody extends IOException {
    private static final long serialVersionUID = 1L;

    TruncatedBody(String what, long got, long wanted) {
      super(what + ": body ended after " + got + " of " + wanted + " bytes");
    }
  }
}
