"""DIR/demo.csv: --guest-clock-log's columns, one row per reading, on disk as it comes."""

from gateway.app.demo.readings import CSV_COLUMNS, Reading, ReadingsCsv, read_csv


def test_columns_are_those_of_the_guest_clock_log():
    assert CSV_COLUMNS == ("time_unix_s", "guest_ip", "guest_mac", "offset_s", "error_s", "source")


def test_rows_are_written_as_readings_come_and_read_back(tmp_path):
    path = tmp_path / "demo.csv"
    out = ReadingsCsv(str(path))
    first = Reading(1796159964.361207, "192.168.65.3", "52:54:00:12:34:56", -0.00065, 0.000858, "ntpdig")
    out.write(first)
    # on disk before the file is closed (a demo killed hard still leaves its readings)
    assert path.read_text().splitlines() == [",".join(CSV_COLUMNS),
                                             "1796159964.361207,192.168.65.3,52:54:00:12:34:56,-0.000650000,0.000858000,ntpdig"]
    out.write(Reading(1796159965.0, "192.168.65.3", "52:54:00:12:34:56", 1.5, 0.0005, "icmp-timestamp"))
    out.close()
    assert out.rows == 2
    back = read_csv(str(path))
    assert back[0] == first
    assert back[1].offset_s == 1.5 and back[1].source == "icmp-timestamp"
