"""Data producers: what writes a data set in the MAC layout for `malt.data` to read.

    attribution  raw click and conversion logs -> labels under every rule (`malt attribute`),
                 in memory or on Spark (`attribution.spark`)
    simulate     the MAC-shaped and the app-promotion simulators (`malt simulate`)
    kuairand     the KuaiRand conversion (`malt data kuairand`)
    fetch        the MAC release, downloaded (`malt fetch`)

Nothing in the model stack imports them: a data set on disk is the only thing they share with
training, evaluation and scoring.
"""
