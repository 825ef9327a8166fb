package io.sluice.cli;

/** A command-line mistake found after parsing (bad combination, bad value): exit status 2. */
final class UsageException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  UsageException(String message) {
    super(message);
  }
}
