package io.sluice.s3;

import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;
import org.reactivestreams.Subscriber;
import org.reactivestreams.Subscription;
import software.amazon.awssdk.core.async.AsyncResponseTransformer;
import software.amazon.awssdk.core.async.SdkPublisher;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;

/**
 * One try of a {@link S3Store.RangeRead}: a GET whose body chunks go straight into the read's
 * buffer. Runs on the client's threads; its fields other than the counters are guarded by the
 * read's lock.
 */
final class Attempt implements AsyncResponseTransformer<GetObjectResponse, Void> {
  final S3Store.RangeRead read;
  final boolean hedge;
  long startNanos;
  long received; // guarded by read
  ByteBuffer own; // a hedge's bytes until it wins; guarded by read
  boolean ended; // guarded by read
  volatile boolean timedOut;
  volatile ScheduledFuture<?> timeout;
  volatile CompletableFuture<Void> call;
  private volatile CompletableFuture<Void> body;

  Attempt(S3Store.RangeRead read, boolean hedge) {
    this.read = read;
    this.hedge = hedge;
  }

  @Override
  public CompletableFuture<Void> prepare() {
    CompletableFuture<Void> f = new CompletableFuture<>();
    body = f;
    return f;
  }

  @Override
  public void onResponse(GetObjectResponse response) {}

  @Override
  public void onStream(SdkPublisher<ByteBuffer> publisher) {
    CompletableFuture<Void> f = body;
    publisher.subscribe(
        new Subscriber<ByteBuffer>() {
          private Subscription subscription;

          @Override
          public void onSubscribe(Subscription s) {
            subscription = s;
            s.request(Long.MAX_VALUE);
          }

          @Override
          public void onNext(ByteBuffer chunk) {
            try {
              read.accept(Attempt.this, chunk);
            } catch (Exception e) {
              subscription.cancel();
              f.completeExceptionally(e);
            }
          }

          @Override
          public void onError(Throwable t) {
            f.completeExceptionally(t);
          }

          @Override
          public void onComplete() {
            f.complete(null);
          }
        });
  }

  @Override
  public void exceptionOccurred(Throwable error) {
    CompletableFuture<Void> f = body;
    if (f != null) {
      f.completeExceptionally(error);
    }
  }
}
