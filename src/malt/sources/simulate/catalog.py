"""The item catalogue: categories, shops, brands, adgroups, prices, latent and visual vectors.

Items sit in categories; an item's latent vector lies near its category's centre, so category,
shop and brand ids carry most of what a model can learn about an item. Categories differ in price
level, and with it in how long their journeys are and how often a purchase is repeated. Each item
also has a visual vector correlated with its latent vector, seen through two noisy "image
encoders" whose cosines fill the similarity sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from malt.sources.simulate.config import LATENT_DIM, VISUAL_DIM, Params

_SAMPLE_BATCH = 1 << 18


@dataclass
class Catalog:
    """Items [I] and their groups. Ids here are 0-based; `raw_*` give the ids written out."""

    category: np.ndarray          # int32 [I]
    shop: np.ndarray              # int32 [I]
    brand: np.ndarray             # int32 [I]
    adgroup: np.ndarray           # int32 [I]
    price: np.ndarray             # float32 [I] standardised log price
    price_band: np.ndarray        # int8 [I] price decile
    quality: np.ndarray           # float32 [I] item + shop + brand appeal
    latent: np.ndarray            # float32 [I, K] unit-variance components
    visual: np.ndarray            # float16 [I, Dv] unit vectors
    encoders: tuple[np.ndarray, np.ndarray]  # float16 [I, Dv] noisy unit vectors
    popularity_cdf: np.ndarray    # float64 [I]
    guide: np.ndarray             # int32 [Q] first item with cdf > q * total / Q
    category_price: np.ndarray    # float32 [C]
    raw: dict[str, np.ndarray]    # field -> int32 [n] raw id of each 0-based id (>= 1)

    @property
    def items(self) -> int:
        return len(self.category)

    def sample_popular(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Items drawn in proportion to popularity, int64 `shape` (inverse CDF)."""
        cdf = self.popularity_cdf
        fraction = rng.random(shape).reshape(-1)
        target = fraction * cdf[-1]
        # The guide table jumps close to the answer (one bin early, to be safe from rounding);
        # a few vectorised steps forward finish the search, far faster than a binary search.
        bins = len(self.guide)
        item = self.guide[np.maximum((fraction * bins).astype(np.int64) - 1, 0)].astype(np.int64)
        todo = np.flatnonzero((cdf[item] <= target) & (item < self.items - 1))
        while todo.size:
            item[todo] += 1
            todo = todo[(cdf[item[todo]] <= target[todo]) & (item[todo] < self.items - 1)]
        return item.reshape(shape)

    def affinity(self, interest: np.ndarray, items: np.ndarray) -> np.ndarray:
        """u.v / sqrt(K) of interests [B, K] with items [B] or [B, M] -> same shape as items
        (unit variance for random pairs)."""
        v = self.latent[items]
        spec = "bk,bk->b" if items.ndim == 1 else "bk,bmk->bm"
        return np.einsum(spec, interest, v) / np.float32(np.sqrt(LATENT_DIM))

    def choose(self, interest: np.ndarray, candidates: int, temperature: float,
               rng: np.random.Generator) -> np.ndarray:
        """One item per interest vector [B, K]: among `candidates` popular items, the pick
        follows softmax(affinity / temperature) (Gumbel max). Returns int64 [B]."""
        out = np.empty(len(interest), dtype=np.int64)
        for lo in range(0, len(interest), _SAMPLE_BATCH):
            u = interest[lo:lo + _SAMPLE_BATCH]
            cand = self.sample_popular(rng, (len(u), candidates))
            score = self.affinity(u, cand) / temperature + rng.gumbel(size=cand.shape)
            out[lo:lo + len(u)] = cand[np.arange(len(u)), score.argmax(1)]
        return out


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Heavy-tailed weights in random order."""
    return rng.permutation((np.arange(1, n + 1, dtype=np.float64)) ** -exponent)


def _assign_within(owner_category: np.ndarray, item_category: np.ndarray, n_categories: int,
                   rng: np.random.Generator) -> np.ndarray:
    """For each item, one of the owners (shops or brands) of its category, uniformly."""
    order = np.argsort(owner_category, kind="stable")
    count = np.bincount(owner_category, minlength=n_categories)
    start = np.r_[0, np.cumsum(count)[:-1]]
    pick = (rng.random(len(item_category)) * count[item_category]).astype(np.int64)
    return order[start[item_category] + pick].astype(np.int32)


def _owners(n: int, n_categories: int, category_weight: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Main category of `n` owners; every category gets at least one."""
    extra = rng.choice(n_categories, size=max(n - n_categories, 0), p=category_weight)
    return np.r_[np.arange(n_categories), extra].astype(np.int32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def build_catalog(n_items: int, params: Params, rng: np.random.Generator) -> Catalog:
    """Draw a catalogue of `n_items` items."""
    p = params
    n_categories = int(np.clip(2 * np.sqrt(n_items), 50, 4_000))
    n_shops = max(n_categories, int(n_items * p.shops_per_item))
    n_brands = max(n_categories, int(n_items * p.brands_per_item))

    category_weight = _zipf_weights(n_categories, p.category_zipf, rng)
    category_weight /= category_weight.sum()
    category = rng.choice(n_categories, size=n_items, p=category_weight).astype(np.int32)
    shop = _assign_within(_owners(n_shops, n_categories, category_weight, rng), category,
                          n_categories, rng)
    brand = _assign_within(_owners(n_brands, n_categories, category_weight, rng), category,
                           n_categories, rng)
    # Adgroups: consecutive blocks of a shop's items.
    by_shop = np.argsort(shop, kind="stable")
    shop_sorted = shop[by_shop]
    first = np.r_[True, shop_sorted[1:] != shop_sorted[:-1]]
    rank = np.arange(n_items) - np.maximum.accumulate(np.where(first, np.arange(n_items), 0))
    new_group = first | (rank % p.items_per_adgroup == 0)
    adgroup = np.empty(n_items, dtype=np.int32)
    adgroup[by_shop] = np.cumsum(new_group) - 1

    category_price = rng.normal(size=n_categories).astype(np.float32)
    price = (category_price[category] + 0.4 * rng.normal(size=n_items)).astype(np.float32)
    edges = np.quantile(price, np.linspace(0, 1, p.price_bands + 1)[1:-1])
    price_band = np.searchsorted(edges, price).astype(np.int8)

    shop_quality = rng.normal(0, 0.25, n_shops)
    brand_quality = rng.normal(0, 0.2, n_brands)
    quality = (rng.normal(0, 0.35, n_items) + shop_quality[shop]
               + brand_quality[brand]).astype(np.float32)
    popularity = _zipf_weights(n_items, p.item_zipf, rng) * np.exp(0.5 * quality)

    # float32 draws: at MAC scale these arrays hold ~10M rows.
    centre = rng.standard_normal((n_categories, LATENT_DIM), dtype=np.float32)
    latent = centre[category]
    latent += p.item_spread * rng.standard_normal((n_items, LATENT_DIM), dtype=np.float32)
    latent /= np.float32(np.sqrt(1 + p.item_spread ** 2))
    projection = (rng.standard_normal((LATENT_DIM, VISUAL_DIM), dtype=np.float32)
                  / np.float32(np.sqrt(LATENT_DIM)))
    visual = np.zeros((n_items, VISUAL_DIM), dtype=np.float32)
    for k in range(LATENT_DIM):  # elementwise, not BLAS: the same bits on every CPU
        visual += latent[:, k:k + 1] * projection[k]
    visual += np.float32(0.7 / np.sqrt(VISUAL_DIM)) * rng.standard_normal(
        (n_items, VISUAL_DIM), dtype=np.float32)
    visual = _unit(visual)
    encoders = tuple(_unit(visual + np.float32(noise / np.sqrt(VISUAL_DIM))
                           * rng.standard_normal((n_items, VISUAL_DIM), dtype=np.float32)
                           ).astype(np.float16)
                     for noise in (0.5, 0.8))

    sizes = {"item": n_items, "shop": n_shops, "brand": n_brands, "category": n_categories,
             "adgroup": int(adgroup.max()) + 1}
    raw = {name: rng.permutation(n).astype(np.int32) + 1 for name, n in sizes.items()}
    raw["price_band"] = np.arange(p.price_bands, dtype=np.int32) + 1
    cdf = np.cumsum(popularity)
    bins = 1 << max(10, int(np.ceil(np.log2(2 * n_items))))
    guide = np.searchsorted(cdf, np.arange(bins) * (cdf[-1] / bins), side="right"
                            ).astype(np.int32)
    return Catalog(category=category, shop=shop, brand=brand, adgroup=adgroup, price=price,
                   price_band=price_band, quality=quality, latent=latent,
                   visual=visual.astype(np.float16),
                   encoders=encoders, popularity_cdf=cdf, guide=guide,
                   category_price=category_price, raw=raw)
