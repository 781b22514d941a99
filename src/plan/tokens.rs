//! Token read-outs of catalog backbones: which cuts output tokens, how they are laid out,
//! and the feature shape a `tokens cls | mean | map` read-out gives.
//!
//! A catalog cut whose output is a sequence of tokens (a Vision Transformer's `encoder`
//! and everything in it: `[S, D]`, batch first, the class token first; a Swin
//! Transformer's channels-last `[H, W, C]` maps, its patch tokens on their grid) needs
//! `tokens`:
//! there is no default, as with a TorchScript module's tokens, so that the features a
//! probe sees are always written in the experiment (and shown by `psyrun plan`, with the
//! feature shape they give). A feature map or a flat output takes no `tokens`.

use super::types::{TokenFormat, TokenLayout, TokenReadout};
use crate::models::catalog::{self, Arch};

/// The layout of a catalog cut's tokens for `size` px images (batch first), or `None`
/// for a feature map, a flat output or a cut that does not work at that size.
pub fn catalog_format(arch: Arch, cut: &str, size: u32) -> Option<TokenFormat> {
    catalog::token_grid(arch, cut, size).map(|g| TokenFormat {
        layout: TokenLayout::Nld,
        prefix: g.prefix,
        grid: Some((g.rows, g.cols)),
    })
}

/// Why a token read-out does not fit a cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// `tokens` on a cut whose output is a feature map or a flat vector.
    NotTokens,
    /// A cut whose output is tokens, without `tokens`.
    Missing(TokenFormat),
    /// `tokens cls` on tokens without a class token.
    NoClassToken,
    /// `tokens map` on tokens without a patch grid.
    NoGrid,
}

/// The feature shape `tokens` reads from a cut output of `shape` (`[S, D]` when `format`
/// says it is tokens): `[D]` for `cls` and `mean`, `[D, rows, columns]` for `map`; the
/// shape itself without tokens.
pub fn readout_shape(
    shape: &[u32],
    format: Option<TokenFormat>,
    tokens: Option<TokenReadout>,
) -> Result<Vec<u32>, Mismatch> {
    let (format, readout) = match (format, tokens) {
        (None, None) => return Ok(shape.to_vec()),
        (None, Some(_)) => return Err(Mismatch::NotTokens),
        (Some(f), None) => return Err(Mismatch::Missing(f)),
        (Some(f), Some(r)) => (f, r),
    };
    let d = shape[shape.len() - 1];
    match readout {
        TokenReadout::Cls if format.prefix == 0 => Err(Mismatch::NoClassToken),
        TokenReadout::Cls | TokenReadout::Mean => Ok(vec![d]),
        TokenReadout::Map => match format.grid {
            Some((rows, cols)) => Ok(vec![d, rows, cols]),
            None => Err(Mismatch::NoGrid),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_cuts_are_tokens_with_a_class_token_and_a_grid() {
        let f = catalog_format(Arch::VitBx16, "encoder.layers.encoder_layer_3.mlp", 224).unwrap();
        assert_eq!(
            f,
            TokenFormat {
                layout: TokenLayout::Nld,
                prefix: 1,
                grid: Some((14, 14))
            }
        );
        let f32 = catalog_format(Arch::VitBx32, "encoder.ln", 224).unwrap();
        assert_eq!(f32.grid, Some((7, 7)));
        // The patch embedding is a feature map; the head a flat vector; a CNN has no tokens.
        assert_eq!(catalog_format(Arch::VitBx16, "conv_proj", 224), None);
        assert_eq!(catalog_format(Arch::VitBx16, "heads", 224), None);
        assert_eq!(catalog_format(Arch::Resnet18, "layer2", 224), None);
        // A ViT takes 224 px only.
        assert_eq!(catalog_format(Arch::VitBx16, "encoder.ln", 256), None);
        // Swin: channels-last maps of patch tokens, no class token.
        let swin = catalog_format(Arch::SwinT, "features.3", 224).unwrap();
        assert_eq!((swin.prefix, swin.grid), (0, Some((28, 28))));
        let norm = catalog_format(Arch::SwinT, "norm", 224).unwrap();
        assert_eq!(norm.grid, Some((7, 7)));
        for cut in ["features.0.0", "permute", "avgpool", "head"] {
            assert_eq!(catalog_format(Arch::SwinT, cut, 224), None, "{cut}");
        }
        // ConvNeXt's channels-last maps inside a block stay feature maps.
        assert_eq!(
            catalog_format(Arch::ConvnextTiny, "features.1.0.block.2", 224),
            None
        );
    }

    #[test]
    fn readouts_give_their_shapes() {
        let f = catalog_format(Arch::VitBx16, "encoder.ln", 224);
        let s = [197, 768];
        assert_eq!(readout_shape(&s, f, Some(TokenReadout::Cls)), Ok(vec![768]));
        assert_eq!(
            readout_shape(&s, f, Some(TokenReadout::Mean)),
            Ok(vec![768])
        );
        assert_eq!(
            readout_shape(&s, f, Some(TokenReadout::Map)),
            Ok(vec![768, 14, 14])
        );
        assert_eq!(
            readout_shape(&s, f, None),
            Err(Mismatch::Missing(f.unwrap()))
        );
        assert_eq!(
            readout_shape(&[512, 28, 28], None, Some(TokenReadout::Mean)),
            Err(Mismatch::NotTokens)
        );
        assert_eq!(
            readout_shape(&[512, 28, 28], None, None),
            Ok(vec![512, 28, 28])
        );
        let no_cls = TokenFormat {
            prefix: 0,
            ..f.unwrap()
        };
        assert_eq!(
            readout_shape(&s, Some(no_cls), Some(TokenReadout::Cls)),
            Err(Mismatch::NoClassToken)
        );
        // A Swin map [H, W, C]: mean and map, no class token.
        let f = catalog_format(Arch::SwinT, "features.5", 224);
        let s = [14, 14, 384];
        assert_eq!(
            readout_shape(&s, f, Some(TokenReadout::Mean)),
            Ok(vec![384])
        );
        assert_eq!(
            readout_shape(&s, f, Some(TokenReadout::Map)),
            Ok(vec![384, 14, 14])
        );
        assert_eq!(
            readout_shape(&s, f, Some(TokenReadout::Cls)),
            Err(Mismatch::NoClassToken)
        );
    }
}
