package io.sluice.server;

import io.sluice.config.BearerTokens;
import org.apache.arrow.flight.CallHeaders;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.auth2.CallHeaderAuthenticator;

/**
 * Flight's header authenticator for static bearer tokens: every call (DoGet, actions, listings)
 * must carry {@code authorization: Bearer TOKEN} with a configured token, else UNAUTHENTICATED. The
 * token is never logged or echoed; a refusal is counted in {@code sluice_errors_total}.
 */
final class TokenAuthenticator implements CallHeaderAuthenticator {
  private static final String PREFIX = "Bearer ";

  private final BearerTokens tokens;
  private final Runnable onRefused;

  TokenAuthenticator(BearerTokens tokens, Runnable onRefused) {
    this.tokens = tokens;
    this.onRefused = onRefused;
  }

  @Override
  public AuthResult authenticate(CallHeaders headers) {
    String value = headers.get("authorization");
    if (value == null) {
      onRefused.run();
      throw CallStatus.UNAUTHENTICATED
          .withDescription("this daemon needs 'authorization: Bearer TOKEN' (none was sent)")
          .toRuntimeException();
    }
    if (!value.regionMatches(true, 0, PREFIX, 0, PREFIX.length())
        || !tokens.accepts(value.substring(PREFIX.length()).strip())) {
      onRefused.run();
      throw CallStatus.UNAUTHENTICATED
          .withDescription("the bearer token is not one this daemon accepts")
          .toRuntimeException();
    }
    return () -> "bearer"; // one identity: tokens are not users
  }
}
