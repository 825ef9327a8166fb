package io.sluice.client;

/** A request or message that breaks the protocol; {@link #field()} names the offending field. */
public final class ProtocolException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  private final String field;

  public ProtocolException(String field, String message) {
    super(message);
    this.field = field;
  }

  public ProtocolException(String field, String message, Throwable cause) {
    super(message, cause);
    this.field = field;
  }

  /** The descriptor or metadata field at fault, or {@code "json"} when the text did not parse. */
  public String field() {
    return field;
  }
}
