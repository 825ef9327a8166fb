package io.sluice.config;

/**
 * A configuration mistake: an unknown key, a bad value or a bad combination, with the key, the
 * value and where it came from (the config file, an environment variable or a flag) in the message.
 */
public final class ConfigException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  public ConfigException(String message) {
    super(message);
  }

  public ConfigException(String message, Throwable cause) {
    super(message, cause);
  }
}
