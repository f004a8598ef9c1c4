"""CamVid folders: the real 0016E5 clip, and small trees with every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dff.data import IGNORE_INDEX, DatasetError
from dff.data.camvid import CAMVID_CLASSES, CAMVID_VOID, camvid_sequences

DATA = Path(__file__).parents[1].parent / "shared" / "data"
CAMVID = DATA / "camvid_0016E5"


def make_tree(root: Path, names: list[str], *, size=(24, 32), label_value: int = 3) -> Path:
    """images/<name>.png with a label of ``label_value`` and a void corner for each name."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(names):
        cv2.imwrite(str(root / "images" / f"{name}.png"), np.full(size + (3,), 10 * n, np.uint8))
        label = np.full(size, label_value, np.uint8)
        label[:4, :4] = CAMVID_VOID
        cv2.imwrite(str(root / "labels" / f"{name}.png"), label)
    return root


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid data not found at {CAMVID}")
class TestRealCamVid:
    def test_one_fully_labelled_sequence_in_order(self):
        (sequence,) = camvid_sequences(CAMVID)
        files = sorted((CAMVID / "images").glob("*.jpg"))
        assert len(sequence) == len(files) and list(sequence.labelled_frames) == list(range(len(files)))
        numbers = [int(p.stem.split("_")[1]) for p in sequence.images]
        assert numbers == sorted(numbers)
        assert sequence.class_names == CAMVID_CLASSES

    def test_labels_map_void_to_ignore(self):
        (sequence,) = camvid_sequences(CAMVID)
        image, label = sequence.image_and_label(7)
        raw = cv2.imread(str(sequence.labels[7]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (360, 480, 3) and label.shape == (360, 480) and label.dtype == np.uint8
        assert (raw == CAMVID_VOID).any(), "this frame has void pixels"
        np.testing.assert_array_equal(label == IGNORE_INDEX, raw == CAMVID_VOID)
        np.testing.assert_array_equal(label[raw < CAMVID_VOID], raw[raw < CAMVID_VOID])


class TestTrees:
    def test_sequences_split_by_name_prefix(self, tmp_path):
        make_tree(tmp_path, ["0006R0_f02430", "0006R0_f02400", "Seq05VD_f00010", "Seq05VD_f00000", "Seq05VD_f00030"])
        sequences = {s.name: s for s in camvid_sequences(tmp_path)}
        assert len(sequences) == 2
        lengths = sorted(len(s) for s in sequences.values())
        assert lengths == [2, 3]
        seq05 = next(s for s in sequences.values() if len(s) == 3)
        assert [p.stem for p in seq05.images] == ["Seq05VD_f00000", "Seq05VD_f00010", "Seq05VD_f00030"]

    def test_unlabelled_frames_are_kept_but_not_labelled(self, tmp_path):
        make_tree(tmp_path, ["a_1", "a_2", "a_3"])
        (tmp_path / "labels" / "a_2.png").unlink()
        (sequence,) = camvid_sequences(tmp_path)
        assert len(sequence) == 3 and sequence.labelled_frames == [0, 2]
        with pytest.raises(KeyError, match="has no label"):
            sequence.image_and_label(1)

    def test_label_out_of_range(self, tmp_path):
        make_tree(tmp_path, ["a_1"], label_value=12)
        (sequence,) = camvid_sequences(tmp_path)
        message = r"a_1\.png holds values \[12\]; expected class ids 0\.\.10 or the ignore value\(s\) \[11\]"
        with pytest.raises(DatasetError, match=message):
            sequence.image_and_label(0)

    def test_label_of_other_size(self, tmp_path):
        make_tree(tmp_path, ["a_1"])
        cv2.imwrite(str(tmp_path / "labels" / "a_1.png"), np.zeros((12, 32), np.uint8))
        (sequence,) = camvid_sequences(tmp_path)
        with pytest.raises(DatasetError, match=r"a_1\.png is 12x32 .* its image is 24x32"):
            sequence.image_and_label(0)

    def test_colour_label(self, tmp_path):
        make_tree(tmp_path, ["a_1"])
        cv2.imwrite(str(tmp_path / "labels" / "a_1.png"), np.zeros((24, 32, 3), np.uint8))
        (sequence,) = camvid_sequences(tmp_path)
        with pytest.raises(DatasetError, match="single-channel 8-bit"):
            sequence.image_and_label(0)

    def test_unreadable_image(self, tmp_path):
        make_tree(tmp_path, ["a_1", "a_2"])
        (tmp_path / "images" / "a_2.png").write_bytes(b"not a png")
        (sequence,) = camvid_sequences(tmp_path)
        with pytest.raises(DatasetError, match=r"cannot read image .*a_2\.png"):
            sequence.image(1)

    def test_empty_folder(self, tmp_path):
        (tmp_path / "images").mkdir()
        (tmp_path / "labels").mkdir()
        with pytest.raises(DatasetError, match=r"images holds no images"):
            camvid_sequences(tmp_path)

    def test_missing_folder(self, tmp_path):
        with pytest.raises(DatasetError, match="does not exist"):
            camvid_sequences(tmp_path)

    def test_label_without_image(self, tmp_path):
        make_tree(tmp_path, ["a_1"])
        cv2.imwrite(str(tmp_path / "labels" / "a_9.png"), np.zeros((24, 32), np.uint8))
        with pytest.raises(DatasetError, match=r"labels without an image .*a_9\.png"):
            camvid_sequences(tmp_path)
