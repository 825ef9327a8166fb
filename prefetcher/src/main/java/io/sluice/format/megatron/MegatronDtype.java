package io.sluice.format.megatron;

import java.util.Locale;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;

/**
 * Element types of a Megatron indexed dataset, by the code its {@code .idx} header stores (the
 * codes of Megatron-LM's {@code DType} enum), with the numpy name and the Arrow type Sluice serves.
 */
public enum MegatronDtype {
  UINT8(1, 1, new ArrowType.Int(8, false)),
  INT8(2, 1, new ArrowType.Int(8, true)),
  INT16(3, 2, new ArrowType.Int(16, true)),
  INT32(4, 4, new ArrowType.Int(32, true)),
  INT64(5, 8, new ArrowType.Int(64, true)),
  FLOAT64(6, 8, new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE)),
  FLOAT32(7, 4, new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE)),
  UINT16(8, 2, new ArrowType.Int(16, false));

  private final int code;
  private final int itemSizeBytes;
  private final ArrowType arrowType;

  MegatronDtype(int code, int itemSizeBytes, ArrowType arrowType) {
    this.code = code;
    this.itemSizeBytes = itemSizeBytes;
    this.arrowType = arrowType;
  }

  /** The code in the {@code .idx} header. */
  public int code() {
    return code;
  }

  public int itemSizeBytes() {
    return itemSizeBytes;
  }

  public ArrowType arrowType() {
    return arrowType;
  }

  /** The numpy name, as the manifest records it. */
  public String wireName() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** The dtype of header code {@code code}, or null when no dtype has it. */
  public static MegatronDtype ofCode(int code) {
    for (MegatronDtype d : values()) {
      if (d.code == code) {
        return d;
      }
    }
    return null;
  }

  /** The dtype called {@code name} (numpy spelling); an unknown name fails listing the known. */
  public static MegatronDtype parse(String name) {
    for (MegatronDtype d : values()) {
      if (d.wireName().equals(name)) {
        return d;
      }
    }
    throw new IllegalArgumentException("dtype=" + name + " must be one of " + codesText());
  }

  /** "1=uint8, 2=int8, ...", for error messages. */
  static String codesText() {
    StringBuilder b = new StringBuilder();
    for (MegatronDtype d : values()) {
      if (!b.isEmpty()) {
        b.append(", ");
      }
      b.append(d.code).append('=').append(d.wireName());
    }
    return b.toString();
  }
}
