#!/usr/bin/python3
"""Writes the small fixtures of tests/data_*_test.ts into tests/fixtures/data/.

Needs Debian's /usr/bin/python3 with python3-numpy and python3-pil. Run from the repository root:
    /usr/bin/python3 tools/make_data_fixtures.py

- cifar-10-batches-py/, cifar-100-python/: CIFAR python batches of a few records, pickled the way the
  official files are (protocol 2 as Python 2's cPickle wrote them: str keys and the pixel buffer as
  BINSTRING, numpy arrays through numpy.core.multiarray._reconstruct).
- pickle/cifar10_py3_protocol{2,4,5}.pkl: the same batch as Python 3 pickles it (bytes through
  _codecs.encode, STACK_GLOBAL + FRAME, BYTEARRAY8 + _frombuffer).
- images/: PNG/JPEG files in the modes torchvision's loader meets (RGB, L, LA, P, RGBA, CMYK JPEG,
  grayscale JPEG) and the RGB pixels Pillow decodes from them (`.rgb` = height, width as two
  big-endian uint16, then HWC uint8), plus Pillow's bilinear resizes of one image.
Pixel values follow pattern(i, c, y, x) = (i * 37 + c * 101 + y * 7 + x * 13) % 256, which the tests
recompute.
"""
import io
import os
import pickle
import sys

import numpy as np
from PIL import Image

OUT = os.path.join('tests', 'fixtures', 'data')


def pattern(count, size=32):
    i, c, y, x = np.meshgrid(np.arange(count), np.arange(3), np.arange(size), np.arange(size), indexing='ij')
    return ((i * 37 + c * 101 + y * 7 + x * 13) % 256).astype(np.uint8).reshape(count, 3 * size * size)


class Py2Pickler(pickle._Pickler):
    """Python 2 cPickle's protocol 2: text and bytes both go out as py2 `str` (SHORT_BINSTRING/BINSTRING)."""

    def save_py2_str(self, obj):
        data = obj.encode('latin1') if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, 'little') + data)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def dump_py2(obj, path):
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    with open(path, 'wb') as f:
        f.write(buffer.getvalue())


def check_loads(path, expected):
    with open(path, 'rb') as f:
        loaded = pickle.load(f, encoding='bytes')
    for key, value in expected.items():
        got = loaded[key.encode() if isinstance(next(iter(loaded)), bytes) else key]
        if isinstance(value, np.ndarray):
            assert np.array_equal(got, value), path
        else:
            assert list(got) == [v.encode() if isinstance(v, str) else v for v in value] or list(got) == value, path


def cifar_pickles():
    c10 = os.path.join(OUT, 'cifar-10-batches-py')
    c100 = os.path.join(OUT, 'cifar-100-python')
    os.makedirs(c10, exist_ok=True)
    os.makedirs(c100, exist_ok=True)
    names10 = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
    batches = {'data_batch_1': [3, 9, 0], 'data_batch_2': [1, 7], 'test_batch': [5, 2]}
    offset = 0
    for name, labels in batches.items():
        data = pattern(offset + len(labels))[offset:]
        offset += len(labels)
        batch = {'batch_label': 'fixture ' + name, 'labels': labels, 'data': data,
                 'filenames': ['img_%d.png' % k for k in range(len(labels))]}
        dump_py2(batch, os.path.join(c10, name))
        check_loads(os.path.join(c10, name), {'labels': labels, 'data': data})
    dump_py2({'num_cases_per_batch': 10000, 'label_names': names10, 'num_vis': 3072},
             os.path.join(c10, 'batches.meta'))

    fine = ['fine_%02d' % k for k in range(100)]
    coarse = ['coarse_%02d' % k for k in range(20)]
    for name, fine_labels, coarse_labels, start in [('train', [99, 0, 42], [19, 4, 7], 0), ('test', [5], [17], 3)]:
        data = pattern(start + len(fine_labels))[start:]
        batch = {'filenames': ['f%d.png' % k for k in range(len(fine_labels))], 'batch_label': name,
                 'fine_labels': fine_labels, 'coarse_labels': coarse_labels, 'data': data}
        dump_py2(batch, os.path.join(c100, name))
        check_loads(os.path.join(c100, name), {'fine_labels': fine_labels, 'data': data})
    dump_py2({'fine_label_names': fine, 'coarse_label_names': coarse}, os.path.join(c100, 'meta'))

    os.makedirs(os.path.join(OUT, 'pickle'), exist_ok=True)
    batch = {'batch_label': 'py3', 'labels': [3, 9, 0], 'data': pattern(3)}
    for protocol in (2, 4, 5):
        path = os.path.join(OUT, 'pickle', 'cifar10_py3_protocol%d.pkl' % protocol)
        with open(path, 'wb') as f:
            pickle.dump(batch, f, protocol=protocol)
        check_loads(path, {'labels': [3, 9, 0], 'data': pattern(3)})


def write_rgb(image, path):
    rgb = np.asarray(image.convert('RGB'))
    with open(path, 'wb') as f:
        f.write(rgb.shape[0].to_bytes(2, 'big') + rgb.shape[1].to_bytes(2, 'big') + rgb.tobytes())


def images():
    folder = os.path.join(OUT, 'images')
    os.makedirs(folder, exist_ok=True)
    height, width = 29, 37
    rng = np.random.default_rng(7)
    # Smooth content plus a little noise: JPEG of pure noise says little about decoder agreement.
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
    base = np.stack([(x * 6) % 256, (y * 8) % 256, ((x + y) * 4) % 256], axis=-1)
    rgb = np.clip(base + rng.integers(-8, 9, size=base.shape), 0, 255).astype(np.uint8)
    source = Image.fromarray(rgb, 'RGB')
    variants = {
        'rgb.png': (source, 'PNG', {}),
        'gray.png': (source.convert('L'), 'PNG', {}),
        'gray_alpha.png': (source.convert('LA'), 'PNG', {}),
        'palette.png': (source.convert('P', palette=Image.ADAPTIVE, colors=16), 'PNG', {}),
        'rgba.png': (Image.fromarray(np.dstack([rgb, rng.integers(0, 256, size=(height, width), dtype=np.uint8)]), 'RGBA'), 'PNG', {}),
        'rgb.jpg': (source, 'JPEG', {'quality': 92}),
        'gray.jpg': (source.convert('L'), 'JPEG', {'quality': 92}),
        'cmyk.jpg': (source.convert('CMYK'), 'JPEG', {'quality': 92}),
    }
    for name, (image, fmt, options) in variants.items():
        path = os.path.join(folder, name)
        image.save(path, fmt, **options)
        write_rgb(Image.open(path), path + '.rgb')
    for w, h in [(20, 16), (60, 50), (37, 11)]:
        write_rgb(source.resize((w, h), Image.BILINEAR), os.path.join(folder, 'rgb.png.resize_%dx%d.rgb' % (w, h)))


if __name__ == '__main__':
    if not os.path.isdir('tests'):
        sys.exit('run from the repository root')
    cifar_pickles()
    images()
    print('wrote', OUT)
