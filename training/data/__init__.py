"""The Fashion-MNIST pipeline: find or download the files, parse them once, cache, split.

One module per step:

- `raw`: what the data is (ten classes of 28x28 uint8 images) as a `RawDataset`, and `DatasetError`;
- `idx`: the IDX format of the original files (`parse_idx`);
- `csv`: the Kaggle CSV layout ``label,pixel1..pixel784`` (`load_csv`);
- `download`: fetching the four official ``.gz`` files, SHA-256 checked, written atomically;
- `locate`: which directory holds the files (``--data-dir``, ``FASHION_MNIST_DIR``, the
  project's and the shared data dirs), downloading them when none does;
- `cache`: `load_fashion_mnist`, which parses the sources once into a ``.npy`` cache and
  returns read-only memory maps of it;
- `split`: `prepare_dataset`, the stratified subset and train/validation split with
  train-only normalisation statistics (`Dataset`);
- `synthetic`: `synthetic_raw_dataset`, a small learnable stand-in.

The names below are the package's API: import them from `training.data`. The default
directories live in the module that reads them (`locate.PROJECT_DATA_DIR`,
`locate.SHARED_DATA_DIR`, `cache.DEFAULT_CACHE_DIR`): tests patch them there.
This package never imports Django.
"""

from training.data.cache import clear_memo, load_fashion_mnist
from training.data.csv import load_csv
from training.data.download import GZ_SHA256, OFFICIAL_URL, download_fashion_mnist
from training.data.idx import IDX_FILES, parse_idx
from training.data.locate import dataset_search_dirs, find_dataset_dir
from training.data.raw import CLASS_NAMES, N_PIXELS, DatasetError, RawDataset
from training.data.split import Dataset, pixel_mean_std, prepare_dataset, stratified_split
from training.data.synthetic import synthetic_raw_dataset

__all__ = [
    "CLASS_NAMES",
    "DatasetError",
    "Dataset",
    "GZ_SHA256",
    "IDX_FILES",
    "N_PIXELS",
    "OFFICIAL_URL",
    "RawDataset",
    "clear_memo",
    "dataset_search_dirs",
    "download_fashion_mnist",
    "find_dataset_dir",
    "load_csv",
    "load_fashion_mnist",
    "parse_idx",
    "pixel_mean_std",
    "prepare_dataset",
    "stratified_split",
    "synthetic_raw_dataset",
]
