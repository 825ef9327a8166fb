package io.sluice.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class ByteSizeTest {
  @ParameterizedTest
  @CsvSource({
    "0, 0",
    "4096, 4096",
    "64k, 65536",
    "64K, 65536",
    "512m, 536870912",
    "512MB, 536870912",
    "8g, 8589934592",
    "2t, 2199023255552"
  })
  void parsesSuffixes(String text, long bytes) {
    assertEquals(bytes, ByteSize.parse("--memory-budget", text));
  }

  @ParameterizedTest
  @ValueSource(strings = {"", "g", "1.5g", "-1m", "lots", "9999999999999t"})
  void rejectsWithOptionAndValue(String text) {
    ConfigException e =
        assertThrows(ConfigException.class, () -> ByteSize.parse("--memory-budget", text));
    assertTrue(e.getMessage().startsWith("--memory-budget=" + text + " "), e.getMessage());
  }

  @ParameterizedTest
  @CsvSource({"0, 0", "1000, 1000", "4096, 4k", "4294967296, 4g", "1610612736, 1536m"})
  void formatsTheShortestExactSize(long bytes, String text) {
    assertEquals(text, ByteSize.format(bytes));
    assertEquals(bytes, ByteSize.parse("x", text));
  }
}
