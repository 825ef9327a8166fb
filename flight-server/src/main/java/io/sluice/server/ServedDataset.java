package io.sluice.server;

import io.sluice.client.Protocol;
import io.sluice.client.ProtocolException;
import io.sluice.format.SampleSource;
import io.sluice.read.ReadBackend;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * A dataset the daemon serves under a name; its batches carry {@code sample_id} then the source's
 * columns.
 *
 * @param backend the backend its shards were opened on, which read-ahead reads through
 */
public record ServedDataset(
    String name, Path dir, SampleSource source, Schema schema, ReadBackend backend) {
  static final Field SAMPLE_ID =
      new Field(
          Protocol.SAMPLE_ID_COLUMN, FieldType.notNullable(new ArrowType.Int(64, false)), null);

  public static ServedDataset of(String name, Path dir, SampleSource source, ReadBackend backend) {
    List<Field> fields = new ArrayList<>();
    fields.add(SAMPLE_ID);
    fields.addAll(source.schema().getFields());
    return new ServedDataset(name, dir, source, new Schema(fields), backend);
  }

  /** The schema restricted to {@code columns} ({@code sample_id} always kept), or all of it. */
  public Schema project(List<String> columns) {
    if (columns == null) {
      return schema;
    }
    for (String c : columns) {
      if (schema.getFields().stream().noneMatch(f -> f.getName().equals(c))) {
        throw new ProtocolException(
            "columns", "columns entry '" + c + "' is not a column of dataset=" + name);
      }
    }
    return new Schema(
        schema.getFields().stream()
            .filter(
                f -> f.getName().equals(Protocol.SAMPLE_ID_COLUMN) || columns.contains(f.getName()))
            .toList());
  }
}
