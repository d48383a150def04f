// As OpenComputers does: extract the native library into java.io.tmpdir, then System.load it.
import java.nio.file.*;

public class LoadNative {
    public static void main(String[] args) throws Exception {
        Path tmp = Paths.get(System.getProperty("java.io.tmpdir"), "libnative-lab.so");
        Files.copy(Paths.get(args[0]), tmp, StandardCopyOption.REPLACE_EXISTING);
        System.load(tmp.toString());
    }
}
